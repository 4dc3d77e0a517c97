"""What a device's plan refers to by name: the files a PUSH step uploads (the DMG, the PFX re-wrapped for
this Mac, CA PEMs) and the named stdin inputs of EXEC steps; secret ones are masked in every record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.redact import LOG_REDACTOR, Redactor


class Materials:
    """What a device's plan refers to by name: upload sources ("dmg", "pfx", "ca:<sha256>") and named
    stdin inputs. Secret ones are produced on first use by `produce` and registered with the redactor."""

    def __init__(
        self,
        sources: Mapping[str, Path | bytes],
        produce: Callable[[str], bytes] | None = None,
        redactor: Redactor | None = None,
        shared: list[bytes] | None = None,
    ) -> None:
        self._sources = dict(sources)
        self._produce = produce
        self.redactor = redactor or Redactor()
        self.shared = shared if shared is not None else []  # also registered with the process-wide redactor

    def release(self) -> None:
        """The job is over: stop masking its secrets process-wide (keeps that redactor small)."""
        while self.shared:
            LOG_REDACTOR.discard(self.shared.pop())

    def source(self, name: str) -> Path | bytes:
        if name not in self._sources:
            if self._produce is None:
                raise KeyError(f"no upload source {name!r}")
            self._sources[name] = self._produce(name)
        return self._sources[name]

    def add_source(self, name: str, value: Path | bytes) -> None:
        self._sources[name] = value

    def stdin(self, name: str) -> bytes:
        value = self.source(f"stdin:{name}")
        assert isinstance(value, bytes)
        return value
