"""Every POSIX utility and system-information tool the shell provides, by command name."""

from macsim.shell import fileutils, ioreg, procutils, sudo, sysinfo, testcmd, textutils
from macsim.shell.proc import Tool

TOOLS: dict[str, Tool] = {
    **textutils.TOOLS,
    **fileutils.TOOLS,
    **procutils.TOOLS,
    **sysinfo.TOOLS,
    **testcmd.TOOLS,
    **sudo.TOOLS,
    **ioreg.TOOLS,
}
