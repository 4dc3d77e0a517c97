"""The registry of emulated commands, by name. Each area keeps its commands in its own module; this module
sits above them all (and below the shell's launcher), so no command module imports it."""

from __future__ import annotations

from functools import cache

from macsim.client1e import tools as client_tools
from macsim.shell import utilities
from macsim.shell.proc import Tool
from macsim.tools import security


@cache
def all_tools() -> dict[str, Tool]:
    """Every command the shell can run from a `#!macsim-tool NAME` stub."""
    merged: dict[str, Tool] = {}
    for reg in (utilities.TOOLS, security.TOOLS, client_tools.TOOLS):
        merged.update(reg)
    return merged


@cache
def all_scripts() -> dict[str, Tool]:
    """Programs that live in files the fake 1E artifacts install (`#!macsim-script NAME` inside):
    install.sh, uninstall.sh, 1E.Client.updateconf.sh, the 1E.Client binary."""
    return dict(client_tools.SCRIPTS)
