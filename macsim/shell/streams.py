"""In-memory and file-backed streams the shell wires between commands (pipes, redirections, `$(...)`)."""

from __future__ import annotations

from pathlib import Path


def as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


class BytesStdin:
    """A Stdin over fixed bytes: a pipe's buffered input, a redirected file, a here-string."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = data
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            out = self._data[self._pos :]
            self._pos = len(self._data)
            return out
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    async def readline(self) -> bytes:
        end = self._data.find(b"\n", self._pos)
        end = len(self._data) if end < 0 else end + 1
        out = self._data[self._pos : end]
        self._pos = end
        return out


class BufferOutput:
    """Collects what a command writes (a pipe stage, a command substitution, tests)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes | str) -> None:
        self._chunks.append(as_bytes(data))

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)

    def text(self) -> str:
        return self.getvalue().decode("utf-8", "replace")


class NullOutput:
    """/dev/null."""

    def write(self, data: bytes | str) -> None:
        return None


class FileOutput:
    """Appends each write to a file on the host's disk. The shell checked permissions when it opened it."""

    def __init__(self, real: Path, truncate: bool) -> None:
        self._real = real
        if truncate:
            real.write_bytes(b"")

    def write(self, data: bytes | str) -> None:
        with self._real.open("ab") as f:
            f.write(as_bytes(data))
