"""hdiutil, installer, pkgutil, launchctl, softwareupdate and the 1E scripts (placeholder: being built)."""

from macsim.shell.proc import Tool

TOOLS: dict[str, Tool] = {}
SCRIPTS: dict[str, Tool] = {}
