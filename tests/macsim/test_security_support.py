"""Helpers for the `security` tool tests: an in-memory Proc, a host, the certificate artifacts.

Tests call the tool directly (no shell, no SSH): `await run(mac, ["security", ...], uid=0, stdin=b"...")`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from macsim.artifacts.certs import CertArtifacts, write_cert_artifacts
from macsim.mac import VirtualMac
from macsim.shell.proc import Proc, Session
from macsim.shell.streams import BufferOutput, BytesStdin
from macsim.spec import Faults, HostSpec
from macsim.tools.security import TOOLS

HOST = "mac-01"
HOST_NAME = "mac-01.local"
CLIENT_BIN = "/Library/Application Support/1E/Client/1E.Client"




@dataclass
class Result:
    status: int
    out: str
    err: str


async def run(mac: VirtualMac, argv: list[str], uid: int = 0, stdin: bytes = b"", cwd: str = "/") -> Result:
    out, err = BufferOutput(), BufferOutput()
    p = Proc(
        mac=mac,
        argv=argv,
        env={},
        cwd=cwd,
        uid=uid,
        user="root" if uid == 0 else mac.spec.user,
        stdin=BytesStdin(stdin),
        stdout=out,
        stderr=err,
        session=Session(),
    )
    status = await TOOLS["security"](p)
    return Result(status, out.text(), err.text())


def make_mac(tmp_path: Path, **spec: object) -> VirtualMac:
    return VirtualMac(HostSpec(name=HOST, **spec), tmp_path / "host")  # type: ignore[arg-type]


def refused_mac(tmp_path: Path) -> VirtualMac:
    return make_mac(tmp_path, faults=Faults(trust_refused=True))


def put(mac: VirtualMac, src: Path, dest: str, mode: int = 0o600, uid: int = 0) -> str:
    """Copy a local file onto the Mac (as an SFTP upload would)."""
    mac.fs.write_bytes(dest, src.read_bytes(), mode=mode, uid=uid)
    return dest


def install_client(mac: VirtualMac, content: bytes = b"#!macsim-script 1E.Client\nv1\n") -> None:
    mac.fs.makedirs("/Library/Application Support/1E/Client")
    mac.fs.write_bytes(CLIENT_BIN, content, mode=0o755)


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> CertArtifacts:
    out = tmp_path_factory.mktemp("certs")
    a = write_cert_artifacts(out, {HOST: HOST_NAME, "mac-02": "MacBook-Two.example.test"})
    yield a  # type: ignore[misc]
    shutil.rmtree(out, ignore_errors=True)


def test_memstdin_readline_keeps_a_last_line_without_newline() -> None:
    import asyncio

    s = BytesStdin(b"a\nb")
    assert asyncio.run(s.readline()) == b"a\n"
    assert asyncio.run(s.readline()) == b"b"
    assert asyncio.run(s.readline()) == b""
