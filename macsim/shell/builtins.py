"""The commands each shell runs itself even though a file of the same name exists (zsh and bash builtins
that behave like, or unlike, the /bin tools)."""

from __future__ import annotations

from macsim.shell.proc import Tool
from macsim.shell.procutils import false, kill, true
from macsim.shell.sysinfo import pwd
from macsim.shell.testcmd import test
from macsim.shell.textutils import echo_sh, echo_zsh, printf

_COMMON: dict[str, Tool] = {
    "printf": printf,
    "test": test,
    "[": test,
    "true": true,
    "false": false,
    "pwd": pwd,
    "kill": kill,
}
ZSH: dict[str, Tool] = {**_COMMON, "echo": echo_zsh}
SH: dict[str, Tool] = {**_COMMON, "echo": echo_sh}
