"""Helpers for the shell tests: a virtual Mac in tmp_path and a way to run one exec request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macsim.mac import VirtualMac
from macsim.shell.interp import run_exec
from macsim.shell.streams import BufferOutput, BytesStdin
from macsim.spec import HostSpec


@dataclass
class Result:
    status: int
    out: str
    err: str


def make_mac(tmp_path: Path, **spec: Any) -> VirtualMac:
    spec.setdefault("name", "mac-01")
    return VirtualMac(HostSpec(**spec), tmp_path / "host")


async def run(mac: VirtualMac, command: str, stdin: bytes = b"") -> Result:
    """Run command as one SSH exec request with in-memory streams."""
    out, err = BufferOutput(), BufferOutput()
    status = await run_exec(mac, command, BytesStdin(stdin), out, err)
    return Result(status, out.text(), err.text())
