"""The parser each fact probe's fixtures exercise (fixture dir name -> parser): `tasks.probes.PARSERS`,
which `orchestrate facts --capture` also uses to fill a captured fixture's "expected"."""

from __future__ import annotations

from tasks.probes import PARSERS

__all__ = ["PARSERS"]
