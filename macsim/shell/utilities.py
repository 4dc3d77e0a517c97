"""POSIX utilities and system-information tools (placeholder: being built)."""

from macsim.shell.proc import Tool

TOOLS: dict[str, Tool] = {}
