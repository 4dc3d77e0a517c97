"""The capture's redaction (orchestrator.capture): the same value always gets the same placeholder, in the
case it had and with its shape (parsers still read it, equal things stay equal); nothing of the host name,
serial number, UUID, user or certificate hashes survives, not even hex-encoded in a `security` blob;
versions are not taken for addresses; a fixture directory is written only when nothing leaked."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from orchestrator.capture import Redaction, redaction_for, write_fixtures
from tasks import facts as f
from tasks.model import ProbeOutput

SHA1 = "CD7233F6401C113208327D91412A6F3CE9A7CC72"
SHA256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
SERIAL = "C02XK1ABJG5J"
UUID = "F79092CB-1A2B-4C3D-8E9F-0123456789AB"
NAME_HEX = b"mac-07.corp.example.com".hex().upper()


def out(argv: tuple[str, ...], stdout: str, status: int = 0, stderr: str = "") -> ProbeOutput:
    return ProbeOutput(argv, status, stdout, stderr)


OUTPUTS = {
    "sw_vers": out(("sw_vers",), "ProductName:\t\tmacOS\nProductVersion:\t\t14.5\nBuildVersion:\t\t23F79\n"),
    "hostname": out(("hostname",), "mac-07.corp.example.com\n"),
    "local_host_name": out(("scutil", "--get", "LocalHostName"), "Mac-07\n"),
    "pkg_info": out(
        ("pkgutil", "--pkg-info", f.PKG_ID),
        f"package-id: {f.PKG_ID}\nversion: 8.1.2.65\nvolume: /\nlocation: \ninstall-time: 1717000000\n",
    ),
    "identities": out(
        ("security", "find-identity", f.SYSTEM_KEYCHAIN),
        f'\nPolicy: X.509 Basic\n  Matching identities\n  1) {SHA1} "mac-07.corp.example.com"\n'
        "     1 identities found\n\n  Valid identities only\n"
        f'  1) {SHA1} "mac-07.corp.example.com"\n     1 valid identities found\n',
    ),
    "certificates": out(
        ("security", "find-certificate", "-a", "-Z", f.SYSTEM_KEYCHAIN),
        f"SHA-256 hash: {SHA256}\nSHA-1 hash: {SHA1}\n"
        'keychain: "/Library/Keychains/System.keychain"\nattributes:\n'
        f'    "labl"<blob>="mac-07.corp.example.com"\n    "subj"<blob>=0x3021311F301D{NAME_HEX}  '
        '"0!1\\0370\\035\\006\\003U\\004\\003\\014\\026mac-07.corp.example.com"\n',
    ),
    "conf": out(
        ("cat", f.CONF), "Switch=tachyon.corp.example.com:4000\nBackgroundChannelUrl=https://10.1.2.3/Bg/\n"
    ),
    "client_log": out(
        ("tail", "-n", "200", f.CLIENT_LOG),
        "1E Client starting (version 8.1.2.65)\nConnected to Switch 10.1.2.3:4000 from fe80::1c2b:3aff:fe4d:5e6f%en0"
        " (MAC 3c:22:fb:01:02:03), user /Users/jane.doe, device F79092CB-1A2B-4C3D-8E9F-0123456789AB\n",
    ),
    "binary_sha256": out(("shasum", "-a", "256", f.BINARY), f"{SHA256.lower()}  {f.BINARY}\n"),
}
IDENTITY = {
    "identity:ioreg": out(
        ("ioreg", "-rd1", "-c", "IOPlatformExpertDevice"),
        f'+-o J314sAP  <class IOPlatformExpertDevice>\n  {{\n    "IOPlatformUUID" = "{UUID}"\n'
        f'    "IOPlatformSerialNumber" = "{SERIAL}"\n  }}\n',
    ),
    "identity:computer_name": out(("scutil", "--get", "ComputerName"), "Jane Doe's MacBook\n"),
}


@pytest.fixture
def captured(tmp_path: Path) -> Path:
    r = redaction_for(OUTPUTS, IDENTITY, ["jdoe"])
    written = write_fixtures(tmp_path, "case", OUTPUTS, r, date(2026, 12, 6))
    assert all(w.parsed for w in written), [w.error for w in written if not w.parsed]
    return tmp_path


def _expected(d: Path, probe: str) -> object:
    return json.loads((d / probe / "case.json").read_text())["expected"]


def test_nothing_identifying_survives(captured: Path) -> None:
    text = "\n".join(p.read_text() for p in captured.glob("*/*.json"))
    low = text.lower()
    for secret in ("mac-07", "corp.example.com", "tachyon", SERIAL, UUID, SHA1, SHA256, "jane.doe", "10.1.2.3",
                   "fe80::1c2b", "3c:22:fb", NAME_HEX, b"mac-07".hex()):  # fmt: skip
        assert secret.lower() not in low, secret
    assert json.loads((captured / "sw_vers" / "case.json").read_text())["source"].startswith(
        "captured on macOS 14.5 23F79, 2026-12-06"
    )


def test_equal_values_stay_equal_in_their_case_and_shape(captured: Path) -> None:
    assert _expected(captured, "hostname") == "host1.domain1.example"
    assert _expected(captured, "local_host_name") == "Host1"  # Mac-07: the same name, its own case
    ident = _expected(captured, "identities")
    certs = _expected(captured, "certificates")
    assert isinstance(ident, list) and isinstance(certs, list)
    assert ident[0]["sha1"] == certs[0]["sha1"] != SHA1 and len(ident[0]["sha1"]) == 40
    assert ident[0]["label"] == certs[0]["label"] == "host1.domain1.example"
    # the binary's digest is the certificate's SHA-256 here: one placeholder, in each one's case
    assert _expected(captured, "binary_sha256") == certs[0]["sha256"].lower()
    conf = _expected(captured, "conf")
    assert conf == {"Switch": "host2.domain1.example:4000", "BackgroundChannelUrl": "https://192.0.2.1/Bg/"}
    (line,) = _expected(captured, "client_log")  # type: ignore[misc]
    assert "Switch 192.0.2.1:4000" in line and "2001:db8::1%en0" in line and "00:00:5e:00:53:01" in line
    assert "/Users/user" in line and "00000000-0000-0000-0000-000000000001" in line  # the hardware UUID
    # versions are not addresses
    assert _expected(captured, "pkg_info") == "8.1.2.65"


def test_redaction_is_deterministic_and_case_aware() -> None:
    r = Redaction()
    r.add_host("Build-Mac.lab.example.org")
    r.add_user("ops")
    text = "BUILD-MAC build-mac Build-Mac.lab.example.org ops opsec /Users/ops macOS"
    assert r.apply(text) == "HOST1 host1 Host1.domain1.example user1 opsec /Users/user1 macOS"
    assert r.apply("build-mac") == "host1"  # the same placeholder on every call
    assert r.kinds() == {"domain": 1, "host": 1, "user": 1}


def test_a_leak_writes_nothing(tmp_path: Path) -> None:
    r = Redaction()
    r.add_host("mac-9")
    # the name hex-encoded in a blob too short for the hex-run rule: the leak check refuses to write
    leaky = {"sw_vers": out(("sw_vers",), "ProductVersion: 14.5\nblob " + b"mac-9".hex() + "\n")}
    with pytest.raises(ValueError, match="still readable"):
        write_fixtures(tmp_path, "case", leaky, r, date(2026, 12, 6))
    assert not any(tmp_path.iterdir())
