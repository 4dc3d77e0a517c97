# ruff: noqa: F811  (pytest fixtures are imported by name; long lines are exact macOS messages)
"""`security import`: success output, key access lists, and every way macOS refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

from macsim.artifacts.certs import CertArtifacts
from macsim.keychain import SYSTEM_KEYCHAIN, cert_names
from tests.macsim.test_security_support import CLIENT_BIN, HOST, arts, install_client, make_mac, put, run  # noqa: F401

MAC_FAILED = (
    "security: SecKeychainItemImport: MAC verification failed during PKCS12 import (wrong password?)\n"
)


def _import_argv(pfx: str, pw: str, *extra: str) -> list[str]:
    return ["security", "import", pfx, "-k", SYSTEM_KEYCHAIN, "-t", "agg", "-f", "pkcs12", "-P", pw, *extra]


async def test_import_with_T_grants_the_binary_as_it_is_now(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    pw = arts.password_for(arts.host_pfx[HOST])
    r = await run(mac, _import_argv(pfx, pw, "-T", CLIENT_BIN))
    assert (r.status, r.out, r.err) == (0, "1 identity imported.\n1 certificate imported.\n", "")
    assert pw not in r.out + r.err
    [ident] = mac.keychain.identities()
    assert cert_names(ident.cert.x509())[0] == "mac-01.local"
    digest = hashlib.sha256(mac.fs.read_bytes(CLIENT_BIN)).hexdigest()
    assert [(a.path, a.cdhash) for a in ident.key.apps] == [(CLIENT_BIN, digest)]
    assert not ident.key.allow_all and ident.key.extractable
    assert ident.key.allows(CLIENT_BIN, digest)
    # An upgrade replaces the binary: the old grant no longer matches it.
    install_client(mac, b"#!macsim-script 1E.Client\nv2\n")
    new_digest = hashlib.sha256(mac.fs.read_bytes(CLIENT_BIN)).hexdigest()
    assert not ident.key.allows(CLIENT_BIN, new_digest)
    # The chain certificate is a plain certificate, not trusted.
    assert len(mac.keychain.certs) == 2 and mac.keychain.trust == []


async def test_import_persists_in_the_keychain_file(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    assert (await run(mac, _import_argv(pfx, arts.password_for(arts.host_pfx[HOST]), "-x", "-A"))).status == 0
    again = make_mac(tmp_path)  # same state directory: as after a reboot
    [ident] = again.keychain.identities()
    assert ident.key.allow_all and not ident.key.extractable
    assert ident.key.allows("/any/other/app", "whatever")


async def test_import_without_T_or_A_trusts_only_the_security_tool(
    tmp_path: Path, arts: CertArtifacts
) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    assert (await run(mac, _import_argv(pfx, arts.password_for(arts.host_pfx[HOST])))).status == 0
    [ident] = mac.keychain.identities()
    assert [a.path for a in ident.key.apps] == ["/usr/bin/security"]
    digest = hashlib.sha256(mac.fs.read_bytes(CLIENT_BIN)).hexdigest()
    assert not ident.key.allows(CLIENT_BIN, digest)


async def test_T_naming_a_missing_path_is_rejected(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    r = await run(mac, _import_argv(pfx, arts.password_for(arts.host_pfx[HOST]), "-T", CLIENT_BIN))
    assert r.status == 1
    assert (
        r.err
        == f"security: SecTrustedApplicationCreateFromPath {CLIENT_BIN}: UNIX[No such file or directory]\n"
    )
    assert mac.keychain.identities() == []


async def test_importing_an_identity_twice_fails(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    install_client(mac)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx")
    argv = _import_argv(pfx, arts.password_for(arts.host_pfx[HOST]), "-T", CLIENT_BIN)
    assert (await run(mac, argv)).status == 0
    r = await run(mac, argv)
    assert (r.status, r.out) == (1, "")
    assert r.err == "security: SecKeychainItemImport: The specified item already exists in the keychain.\n"
    assert len(mac.keychain.keys) == 1


async def test_openssl3_default_pfx_is_refused_like_a_wrong_password(
    tmp_path: Path, arts: CertArtifacts
) -> None:
    mac = make_mac(tmp_path)
    pfx = put(mac, arts.bad_pfx["openssl3-default"], "/private/tmp/o.pfx")
    right_pw = arts.password_for(arts.bad_pfx["openssl3-default"])
    r = await run(mac, _import_argv(pfx, right_pw))
    assert (r.status, r.out, r.err) == (1, "", MAC_FAILED)
    assert right_pw not in r.err
    wrong = await run(
        mac, _import_argv(put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx"), "not-the-password")
    )
    assert (wrong.status, wrong.err) == (1, MAC_FAILED)
    assert mac.keychain.certs == [] and mac.keychain.keys == []


async def test_non_root_cannot_write_the_system_keychain(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx", uid=501)
    r = await run(mac, _import_argv(pfx, arts.password_for(arts.host_pfx[HOST])), uid=501)
    assert (r.status, r.err) == (1, "security: SecKeychainItemImport: Write permissions error.\n")
    assert mac.keychain.keys == []


async def test_non_root_without_k_meets_the_locked_login_keychain(
    tmp_path: Path, arts: CertArtifacts
) -> None:
    mac = make_mac(tmp_path)
    pfx = put(mac, arts.host_pfx[HOST], "/private/tmp/c.pfx", uid=501)
    r = await run(mac, ["security", "import", pfx, "-P", "x"], uid=501)
    assert (r.status, r.err) == (1, "security: SecKeychainItemImport: User interaction is not allowed.\n")


async def test_unreadable_and_missing_input_files(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, _import_argv("/private/tmp/none.pfx", "pw"))
    assert (r.status, r.err) == (
        1,
        "security: Error reading infile /private/tmp/none.pfx: No such file or directory\n",
    )
    put(mac, arts.host_pfx[HOST], "/private/tmp/root-only.pfx", mode=0o600, uid=0)
    r = await run(
        mac, ["security", "import", "/private/tmp/root-only.pfx", "-k", SYSTEM_KEYCHAIN, "-P", "x"], uid=501
    )
    assert r.err == "security: Error reading infile /private/tmp/root-only.pfx: Permission denied\n"


async def test_a_certificate_file_imports_as_certificates(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path)
    put(mac, arts.ca_bundle, "/private/tmp/bundle.pem", mode=0o644)
    r = await run(mac, ["security", "import", "/private/tmp/bundle.pem", "-k", SYSTEM_KEYCHAIN])
    assert (r.status, r.out) == (0, "2 certificates imported.\n")
    again = await run(mac, ["security", "import", "/private/tmp/bundle.pem", "-k", SYSTEM_KEYCHAIN])
    assert again.status == 1 and "already exists" in again.err


async def test_garbage_is_an_unknown_format(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    mac.fs.write_bytes("/private/tmp/junk.pfx", b"\x30\x03\x02\x01\x03", mode=0o644)
    r = await run(mac, ["security", "import", "/private/tmp/junk.pfx", "-k", SYSTEM_KEYCHAIN, "-P", "x"])
    assert (r.status, r.err) == (1, "security: SecKeychainItemImport: Unknown format in import.\n")


async def test_bad_options_print_the_import_usage(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    r = await run(mac, ["security", "import", "/private/tmp/x.pfx", "-Q"])
    assert r.status == 2
    assert r.err.startswith("security: illegal option -- Q\nUsage: import inputfile [-k keychain]")
    assert r.err.rstrip().endswith("Import items into a keychain.")
    r = await run(mac, ["security", "import", "/private/tmp/x.pfx", "-t", "bogus"])
    assert r.status == 2 and "Usage: import" in r.err
    r = await run(mac, ["security", "import", "/private/tmp/x.pfx", "-k"])
    assert r.status == 2 and r.err.startswith("security: option requires an argument -- k\n")
