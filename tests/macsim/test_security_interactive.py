# ruff: noqa: F811  (pytest fixtures are imported by name; long lines are exact macOS messages)
"""`security -i`, global usage, command prefixes, find-identity/find-certificate/delete-*."""

from __future__ import annotations

from pathlib import Path

from macsim.artifacts.certs import CertArtifacts
from macsim.keychain import SYSTEM_KEYCHAIN
from macsim.tools.security import split_line
from tests.macsim.test_security_support import CLIENT_BIN, HOST, arts, install_client, make_mac, put, run  # noqa: F401


def test_split_line_quotes_escapes_and_word_limit() -> None:
    assert split_line('import "/tmp/a b.pfx" -P x\\ y') == ["import", "/tmp/a b.pfx", "-P", "x y"]
    assert split_line("  'one two'three  ") == ["one two", "three"]
    assert len(split_line(" ".join(["w"] * 40))) == 32


async def test_interactive_imports_with_the_password_on_stdin(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    pw = arts.password_for(arts.host_pfx[HOST])
    script = (
        f'import {pfx} -k {SYSTEM_KEYCHAIN} -f pkcs12 -P {pw} -T "{CLIENT_BIN}"\n'
        f"find-certificate -c nothing-like-this\n"
        f"find-identity -v -p ssl-client\n"
    ).encode()
    r = await run(mac, ["security", "-i"], stdin=script)
    assert pw not in r.out + r.err
    assert r.out.startswith("1 identity imported.\n1 certificate imported.\n")
    assert "(CSSMERR_TP_NOT_TRUSTED)" not in r.out  # -v lists valid ones only: none yet (CA untrusted)
    assert r.out.endswith("     0 valid identities found\n")
    assert r.err == (
        "security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain.\n"
        "find-certificate: returned -25300\n"
    )
    assert r.status == 0  # the last command's status
    assert "security> " not in r.out + r.err  # stdin is not a tty: no prompt


async def test_interactive_cuts_lines_at_4095_characters(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    long_line = "help " + "x" * 4090 + "find-certificate -c zzz"  # chars 4096.. run as their own command
    r = await run(mac, ["security", "-i", "-q"], stdin=(long_line + "\nhelp import\n").encode())
    assert "no such command" in r.err  # the first 4,095 characters: help for an unknown word
    assert "SecKeychainSearchCopyNext: The specified item could not be found" in r.err
    assert "returned" not in r.err  # -q
    assert r.out.endswith(
        "Usage: import inputfile [-k keychain] [-t type] [-f format] [-w] [-P passphrase] "
        "[options...]\n" + r.out.split("Usage: import ", 1)[1].split("\n", 1)[1]
    )
    # A last line without a newline is dropped at EOF, as readline() returns NULL there.
    r = await run(mac, ["security", "-i"], stdin=b"find-certificate -c zzz")
    assert (r.status, r.out, r.err) == (0, "", "")


async def test_usage_unknown_command_and_prefixes(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, ["security"])
    assert r.status == 2 and r.out.startswith(
        "Usage: security [-h] [-i] [-l] [-p prompt] [-q] [-v] [command]"
    )
    r = await run(mac, ["security", "-Z"])
    assert r.status == 2 and r.err == "security: illegal option -- Z\n" and "security commands are:" in r.out
    r = await run(mac, ["security", "frobnicate"])
    assert (r.status, r.err) == (1, 'security: unknown command "frobnicate"\n')
    r = await run(mac, ["security", "find-cert", "-c", "zzz"])  # prefix of find-certificate
    assert r.status == 44  # errSecItemNotFound (-25300) in 8 bits
    r = await run(mac, ["security", "list-keychains"])
    assert (r.status, r.err) == (1, "security: list-keychains: not emulated by macsim\n")


async def test_find_identity_find_certificate_and_delete(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    pw = arts.password_for(arts.host_pfx[HOST])
    argv = ["security", "import", pfx, "-k", SYSTEM_KEYCHAIN, "-P", pw, "-T", CLIENT_BIN]
    assert (await run(mac, argv)).status == 0
    [ident] = mac.keychain.identities()
    sha1 = ident.cert.sha1
    r = await run(mac, ["security", "find-identity", "-p", "ssl-client", SYSTEM_KEYCHAIN])
    assert r.out == (
        "\nPolicy: SSL (client)\n  Matching identities\n"
        f'  1) {sha1} "mac-01.local" (CSSMERR_TP_NOT_TRUSTED)\n     1 identities found\n\n'
        "  Valid identities only\n     0 valid identities found\n"
    )
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    assert (await run(mac, ["security", "add-trusted-cert", "-d", "-k", SYSTEM_KEYCHAIN, ca])).status == 0
    r = await run(mac, ["security", "find-identity", "-v", "-p", "ssl-client"])
    assert r.out == f'  1) {sha1} "mac-01.local"\n     1 valid identities found\n'
    r = await run(mac, ["security", "find-certificate", "-a", "-Z", "-c", "MAC-01"])  # case-insensitive
    assert r.out.startswith("SHA-256 hash: ") and f"SHA-1 hash: {sha1}\n" in r.out
    assert 'keychain: "/Library/Keychains/System.keychain"' in r.out
    r = await run(mac, ["security", "find-certificate", "-p", "-c", "Lab Root"])
    assert r.out.startswith("-----BEGIN CERTIFICATE-----\n") and r.out.endswith("-----END CERTIFICATE-----\n")
    r = await run(mac, ["security", "delete-identity", "-c", "mac-01.local", SYSTEM_KEYCHAIN], uid=501)
    assert (r.status, r.err) == (195, "security: SecKeychainItemDelete: Write permissions error.\n")
    r = await run(mac, ["security", "delete-identity", "-c", "no-such-name", SYSTEM_KEYCHAIN])
    assert r.status == 1 and r.err == 'Unable to delete certificate matching "no-such-name"'
    r = await run(mac, ["security", "delete-identity", "-Z", sha1, SYSTEM_KEYCHAIN])
    assert r.status == 0 and mac.keychain.identities() == [] and mac.keychain.keys == []
    r = await run(mac, ["security", "delete-certificate", "-c", "Lab Root", "-t", SYSTEM_KEYCHAIN])
    assert r.status == 0 and mac.keychain.certs == [] and mac.keychain.trust == []
    r = await run(mac, ["security", "delete-certificate", SYSTEM_KEYCHAIN])
    assert r.status == 2 and r.err.startswith("Usage: delete-certificate [-c name] [-Z hash] [-t]")
