"""`python -m macsim serve` and `python -m macsim artifacts` as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from macsim.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


async def test_serve_prints_hosts_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text("hosts:\n  - name: cli-a\n    arch: arm64\n  - name: cli-b\n    host_name: b.corp.test\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "macsim", "serve", "--spec", str(spec), "--state-dir", str(tmp_path / "st"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(), cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("serving "):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"serve exited early: {lines}"
            lines.append(line.decode().rstrip("\n"))
        rows = {m.group(1): m.groups() for m in (re.match(
            r"^(\S+)\s+(\S+)\s+(x86_64|arm64)\s+127\.0\.0\.1:(\d+)$", line) for line in lines) if m}
        assert set(rows) == {"cli-a", "cli-b"}
        assert rows["cli-a"][1:3] == ("cli-a.local", "arm64")
        assert rows["cli-b"][1:3] == ("b.corp.test", "x86_64")
        key_line = next(line for line in lines if line.startswith("client key: "))
        key_path = key_line.removeprefix("client key: ")
        assert key_path == str(tmp_path / "st" / "client_ed25519")
        assert lines[-1] == "serving 2 hosts; stop with Ctrl-C or SIGTERM"
        port = int(rows["cli-b"][3])
        async with asyncssh.connect("127.0.0.1", port=port, username="admin", client_keys=[key_path],
                                    known_hosts=None, connect_timeout=10) as conn:
            result = await conn.run("hostname", check=False)
        assert result.stdout == "b.corp.test\n"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert out.decode().strip().endswith("stopped")
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "macsim", *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=60)


def test_serve_with_a_bad_spec_names_the_field_and_exits_2(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("hosts:\n  - name: a\n    faults: {latency: 5}\n")
    assert main(["serve", "--spec", str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"macsim: {spec}: invalid fleet spec\n  hosts.0.faults.latency: unknown key\n"
    assert captured.out == ""


def test_serve_with_a_missing_spec(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--spec", str(tmp_path / "nope.yaml")]) == 2
    missing = tmp_path / "nope.yaml"
    assert capsys.readouterr().err == f"macsim: {missing}: cannot read: No such file or directory\n"


def test_artifacts_rejects_a_bad_version(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("hosts:\n  - name: a\n")
    assert main(["artifacts", str(tmp_path / "out"), "--versions", "8.0.2", "--hosts", str(spec)]) == 2
    assert capsys.readouterr().err == "macsim: --versions: not a 1E Client version like 8.0.2.5: '8.0.2'\n"
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["serve"])
    assert ei.value.code == 2
    assert "the following arguments are required: --spec" in capsys.readouterr().err


def test_artifacts_writes_dmgs_and_certificates(tmp_path: Path) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("hosts:\n  - name: a\n  - name: b\n    host_name: b.corp.test\n")
    out = tmp_path / "out"
    r = _run("artifacts", str(out), "--versions", "8.0.1.23", "8.0.2.5", "--hosts", str(spec), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "1e.client-macOS_v8.0.1.23.dmg").read_bytes()[-512:][:4] == b"koly"
    assert (out / "1e.client-macOS_v8.0.2.5.dmg").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {h: v["host_name"] for h, v in manifest["hosts"].items()} == {"a": "a.local", "b": "b.corp.test"}
    assert (out / "pfx-passwords.json").stat().st_mode & 0o777 == 0o600
    for pw in json.loads((out / "pfx-passwords.json").read_text()).values():
        assert pw not in r.stdout and pw not in r.stderr
