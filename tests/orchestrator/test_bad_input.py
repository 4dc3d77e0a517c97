"""Bad input as a careless or hostile user gives it (issue 14): each finding of the measurement — a hang,
a traceback, a wrong acceptance, a misleading message, a wrong exit code — run through the CLI."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlmodel import Session, select

from macsim.artifacts.dmg import write_dmg
from orchestrator.artifacts import version_from_filename
from orchestrator.certs import der
from orchestrator.cli import context
from orchestrator.state.models import Artifact, Device
from tests.orchestrator.certs import certmaterial as m
from tests.orchestrator.certs.test_certs_cli import CANARY, _setup, _write_pfx, run

# A hang is the failure these tests guard against: fail in bounded time instead of eating the machine.
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lite(orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _setup(orchestrate_env, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'lite.db'}")


def _zero(dir_: Path, name: str) -> Path:
    link = dir_ / name
    link.symlink_to("/dev/zero")
    return link


def _pw(dir_: Path) -> Path:
    p = dir_ / "pw.txt"
    p.write_text(CANARY + "\n")
    return p


def _bad(r: object, *needles: str) -> str:
    out: str = r.output  # type: ignore[attr-defined]
    assert r.exit_code == 2, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    assert isinstance(r.exception, SystemExit), r.exception  # type: ignore[attr-defined]
    for n in needles:
        assert n in out, out
    return out


# ------------------------------------------------------------- hangs: /dev/zero, FIFOs


def test_ca_add_of_dev_zero_is_refused_not_read(lite: Path) -> None:
    _bad(
        run("certs", "ca", "add", str(_zero(lite, "zero.pem"))),
        "zero.pem: is a character device; a certificate file must be a regular file",
    )


def test_pfx_that_is_dev_zero_is_refused(lite: Path) -> None:
    r = run("certs", "add", str(_zero(lite, "zero.pfx")), "--password-file", str(_pw(lite)))
    _bad(r, "zero.pfx: is a character device", "PKCS#12 (PFX) file must be a regular file")


def test_password_file_that_is_dev_zero_or_a_fifo_is_refused(lite: Path) -> None:
    good = _write_pfx(lite, "good.pfx", m.Leaf(cn="mac-01.local"))
    _bad(run("certs", "add", str(good), "--password-file", str(_zero(lite, "zero"))), "character device")
    fifo = lite / "pw.fifo"
    os.mkfifo(fifo)
    _bad(run("certs", "add", str(good), "--password-file", str(fifo)), "pw.fifo: is a FIFO (named pipe)")


def test_oversized_password_file_names_the_limit(lite: Path) -> None:
    big = lite / "big.txt"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    good = _write_pfx(lite, "good.pfx", m.Leaf(cn="mac-01.local"))
    _bad(run("certs", "add", str(good), "--password-file", str(big)), "big.txt: larger than 64 KiB")


def test_inventory_fifo_does_not_hang(lite: Path) -> None:
    fifo = lite / "fleet.fifo"
    os.mkfifo(fifo)
    _bad(run("inventory", "import", str(fifo)), "is a FIFO")


def test_config_file_that_is_a_fifo_is_refused(orchestrate_env: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    fifo = tmp_path / "conf.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("ORCHESTRATE_CONFIG", str(fifo))
    _bad(run("inventory", "list"), "cannot read configuration file", "is a FIFO")


def test_ssh_files_in_the_configuration_are_checked_at_start_up(orchestrate_env: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """asyncssh opens known_hosts and client keys itself, mid-deploy: a FIFO there would hang the run."""
    fifo = tmp_path / "known_hosts"
    os.mkfifo(fifo)
    monkeypatch.setenv("ORCHESTRATE_SSH__KNOWN_HOSTS", str(fifo))
    _bad(
        run("inventory", "list"),
        "ssh.known_hosts:",
        "is a FIFO",
        "environment variable ORCHESTRATE_SSH__KNOWN_HOSTS",
    )
    monkeypatch.delenv("ORCHESTRATE_SSH__KNOWN_HOSTS")
    (tmp_path / "orchestrate.toml").write_text('[ssh]\nclient_keys = ["/dev/zero"]\n')
    _bad(
        run("inventory", "list"),
        "ssh.client_keys:",
        "/dev/zero: is a character device",
        "[ssh] client_keys in file",
    )


def test_log_settings_are_checked_at_start_up(orchestrate_env: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("ORCHESTRATE_LOG_LEVEL", "LOUD")  # used only with -v: checked anyway
    _bad(run("status"), "log_level: unknown log level 'LOUD'", "environment variable ORCHESTRATE_LOG_LEVEL")
    monkeypatch.delenv("ORCHESTRATE_LOG_LEVEL")
    _bad(run("--log-file", str(tmp_path), "status"), f"cannot write the log file {tmp_path}: Is a directory")


def test_data_dir_that_is_a_file_says_so(orchestrate_env: Path, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("ORCHESTRATE_DATA_DIR", str(tmp_path / "afile"))
    _bad(run("status"), f"{tmp_path / 'afile'} is not a directory")


# ------------------------------------------------------------- the database: no traceback, exit 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "url, needle",
    [
        ("garbage://", "unsupported database scheme 'garbage'"),
        ("not a url at all", "not a database URL"),
        ("sqlite:///{tmp}/missing/dir/x.db", "the directory {tmp}/missing/dir does not exist"),
        ("sqlite:///{tmp}/notdb.db", "file is not a database"),
        ("postgresql://u:hunter2@127.0.0.1:{port}/db?connect_timeout=2", "Connection refused"),
        ("sqlite:///{tmp}/other.db", "belongs to another program"),
        ("sqlite://", "the SQLite URL names no file"),  # in memory: every run would be lost at exit
    ],
)
def test_unusable_database_is_one_message_and_exit_2(
    orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, needle: str
) -> None:
    (tmp_path / "notdb.db").write_text("hello, not a database\n")
    with sqlite3.connect(tmp_path / "other.db") as c:
        c.execute("CREATE TABLE users (name TEXT)")
    port = _free_port()
    monkeypatch.setenv("ORCHESTRATE_DATABASE_URL", url.format(tmp=tmp_path, port=port))
    for cmd in (["inventory", "list"], ["status"], ["artifact", "list"], ["db", "upgrade"]):
        out = _bad(run(*cmd), needle.format(tmp=tmp_path))
        assert "hunter2" not in out
    assert not (tmp_path / "missing").exists()  # a configured path is not silently created


def test_bad_database_url_in_file_is_blamed_on_the_file(orchestrate_env: Path, tmp_path: Path) -> None:
    (tmp_path / "orchestrate.toml").write_text('database_url = "mysql://x/y"\n')
    _bad(run("status"), "database_url: unsupported database scheme 'mysql'",
         f"set by database_url in file {tmp_path / 'orchestrate.toml'}")  # fmt: skip


def test_bad_waves_in_config_is_blamed_on_the_file_at_start_up(orchestrate_env: Path, tmp_path: Path) -> None:
    (tmp_path / "orchestrate.toml").write_text('[waves]\nwaves = "1,banana,100%"\n')
    out = _bad(run("inventory", "list"), "waves.waves: waves: 'banana' is not a device count",
               f"set by [waves] waves in file {tmp_path / 'orchestrate.toml'}")  # fmt: skip
    assert "--waves" not in out


# ------------------------------------------------------------- wrong acceptances


def test_names_unique_ignoring_case_across_imports(lite: Path) -> None:
    inv = lite / "second.csv"
    inv.write_text("name,address\nMAC-01,127.0.0.1\nmac-09,127.0.0.1\n")
    r = run("inventory", "import", str(inv))
    assert r.exit_code == 2  # bad input, as README promises
    assert "'MAC-01' differs only in case from the device 'mac-01' already in the inventory" in r.output
    with Session(context.engine()) as s:
        names = sorted(d.name for d in s.exec(select(Device)).all())
    assert names == ["mac-01", "mac-02", "mac-03"]  # nothing of the refused file was written
    r = run("inventory", "rename", "mac-02", "Mac-01")
    assert r.exit_code == 2 and "differs only in case" in r.output


# ------------------------------------------------------------- misleading messages


@pytest.mark.parametrize("what", ["directory", "fifo", "device"])
def test_dmg_that_is_not_a_regular_file_says_what_it_is(lite: Path, what: str) -> None:
    path = lite / "1e.client-macOS_v8.1.2.62.dmg"
    if what == "directory":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    want = {"directory": "is a directory", "fifo": "is a FIFO", "device": "is a character device"}[what]
    out = _bad(run("artifact", "add", str(path)), want, "disk image (DMG) must be a regular file")
    assert "no such file" not in out
    # checked before the name: a device is not "a name without a version"
    _bad(run("artifact", "add", "/dev/null"), "/dev/null: is a character device")


def test_truncated_pfx_is_not_called_a_wrong_password(lite: Path) -> None:
    good = _write_pfx(lite, "good.pfx", m.Leaf(cn="mac-01.local"))
    cut = lite / "cut.pfx"
    cut.write_bytes(good.read_bytes()[:-200])
    out = _bad(
        run("certs", "add", str(cut), "--password-file", str(_pw(lite))),
        "cut.pfx: the PKCS#12 file is truncated",
    )
    assert "password does not open" not in out


def test_pfx_with_a_certificate_but_no_key_says_so(lite: Path) -> None:
    _key, cert = m.make_leaf(m.Leaf(cn="mac-01.local"), m.lab()["inter"])
    enc = serialization.BestAvailableEncryption(CANARY.encode())
    p = lite / "nokey.pfx"
    p.write_bytes(pkcs12.serialize_key_and_certificates(b"id", None, cert, None, enc))
    out = _bad(run("certs", "add", str(p), "--password-file", str(_pw(lite))),
               "nokey.pfx: the PKCS#12 holds 1 certificate(s) but no private key")  # fmt: skip
    assert "holds no certificate" not in out


def _der(tag: int, value: bytes) -> bytes:
    n = len(value)
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x80 | len(size)]) + size) + value


def test_pfx_asking_for_billions_of_iterations_is_refused_not_opened(lite: Path) -> None:
    """A PFX whose MAC asks for 2**31 - 1 key-derivation iterations (the right password given) kept
    cryptography busy for many minutes: refused from its structure before any derivation."""
    good = _write_pfx(lite, "good.pfx", m.Leaf(cn="mac-01.local")).read_bytes()
    parts = der.read_tlv(good).children()
    digest, salt = parts[2].children()[:2]
    mac = _der(
        0x30, _der(digest.tag, digest.value) + _der(salt.tag, salt.value) + _der(0x02, b"\x7f\xff\xff\xff")
    )
    slow = lite / "slow.pfx"
    slow.write_bytes(
        _der(0x30, _der(parts[0].tag, parts[0].value) + _der(parts[1].tag, parts[1].value) + mac)
    )
    _bad(run("certs", "add", str(slow), "--password-file", str(_pw(lite))),
         "slow.pfx: the PKCS#12 file asks for 2,147,483,647 key-derivation iterations")  # fmt: skip


def test_upgrade_suggests_a_file_name_artifact_add_accepts(lite: Path) -> None:
    r = run(
        "upgrade",
        "--to",
        "8.1.2.62",
        "--limit",
        "mac-01",
        "--switch",
        "sw.example:443",
        "--background-url",
        "https://sw.example/Background/",
    )
    assert r.exit_code == 2, r.output
    m_ = re.search(r"orchestrate artifact add (\S+) ", r.output)
    assert m_ is not None, r.output
    name = m_.group(1)
    assert version_from_filename(name) == "8.1.2.62"
    src = write_dmg(lite, "8.1.2.62")
    dmg = src.rename(lite / name)
    r = run("artifact", "add", str(dmg))
    assert r.exit_code == 0, r.output
    with Session(context.engine()) as s:
        assert [a.version for a in s.exec(select(Artifact)).all()] == ["8.1.2.62"]
    r = run(
        "upgrade",
        "--to",
        "banana",
        "--limit",
        "mac-01",
        "--switch",
        "sw.example:443",
        "--background-url",
        "https://sw.example/Background/",
    )
    assert r.exit_code == 2 and "'banana' is not dotted numbers" in r.output


# ------------------------------------------------------------- exit codes


def test_secrets_rotate_problems_are_bad_input(lite: Path) -> None:
    # the key comes from ORCHESTRATE_SECRET_KEY (see _setup): rotate needs --new-key-file
    _bad(run("secrets", "rotate"), "give the new key with --new-key-file")
    fifo = lite / "next.key"
    os.mkfifo(fifo, 0o600)
    _bad(run("secrets", "rotate", "--new-key-file", str(fifo)), "next.key: is a FIFO")


# ------------------------------------------------------------- third-party deprecation noise


def test_deprecation_noise_only_with_verbose(orchestrate_env: Path) -> None:
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONWARNINGS"] = "default"
    exe = [sys.executable, "-c", "from orchestrator.entry import main; main()"]
    quiet = subprocess.run([*exe, "certs", "ca", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    assert "DeprecationWarning" not in quiet.stderr
    loud = subprocess.run([*exe, "-v", "certs", "ca", "list"], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert loud.returncode == 0, loud.stderr
    assert "CryptographyDeprecationWarning" in loud.stderr
