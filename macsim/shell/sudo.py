"""sudo 1.9 as macOS ships it, driven by the host's policy (`HostSpec.sudo`).

Messages come from sudo's own sources (plugins/sudoers/logging.c, check.c, src/parse_args.c) and from
transcripts of macOS runs: with -S and no tty the prompt goes to stderr without a newline; a wrong password
prints `Sorry, try again.`; the third prints `sudo: 3 incorrect password attempts`; EOF at a prompt prints a
newline, `sudo: no password was provided` and then either the count of wrong attempts or
`sudo: a password is required`. A user absent from sudoers is told, after authenticating,
`USER is not in the sudoers file.  This incident will be reported.` (logging.c, FLAG_NO_USER).

The password is read one line at a time from the streamed stdin, so whatever follows the password line
stays for the command (sudo reads its password byte by byte).
"""

from __future__ import annotations

import time
from dataclasses import replace

from macsim.shell.proc import Proc, Tool
from macsim.shell.resolve import ExecError

SUDO_USAGE = (
    "usage: sudo -h | -K | -k | -V\n"
    "usage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]\n"
    "usage: sudo -l [-ABkNnS] [-g group] [-h host] [-p prompt] [-U user] [-u user] [command [arg ...]]\n"
    "usage: sudo [-ABbEHkNnPS] [-C num] [-D directory] [-g group] [-h host] [-p prompt] [-R directory] "
    "[-T timeout] [-u user] [VAR=value] [-i | -s] [command [arg ...]]\n"
    "usage: sudo -e [-ABkNnS] [-C num] [-D directory] [-g group] [-h host] [-p prompt] [-R directory] "
    "[-T timeout] [-u user] file ..."
)
_NEEDS_ARG = set("pugCDhRTU")
_FLAGS = set("nSvkKHEisAbBNPlVe")
_LONG = {
    "--non-interactive": "n",
    "--stdin": "S",
    "--validate": "v",
    "--reset-timestamp": "k",
    "--remove-timestamp": "K",
    "--set-home": "H",
    "--preserve-env": "E",
    "--login": "i",
    "--shell": "s",
    "--prompt": "p",
    "--user": "u",
    "--help": "h",
    "--version": "V",
}
_NO_TTY = (
    "sudo: a terminal is required to read the password; either use the -S option to read from "
    "standard input or configure an askpass helper"
)


class _Usage(Exception):
    def __init__(self, msg: str | None) -> None:
        super().__init__(msg)
        self.msg = msg


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """sudo's options (stopping at the command). Raises _Usage."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name not in _LONG:
                raise _Usage(f"sudo: unrecognized option `{name}'")
            letter = _LONG[name]
            if letter in _NEEDS_ARG and not eq:
                i += 1
                if i >= len(args):
                    raise _Usage(f"sudo: option `{name}' requires an argument")
                val = args[i]
            opts[letter] = val
            i += 1
            continue
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in _NEEDS_ARG:
                if j + 1 < len(a):
                    opts[c] = a[j + 1 :]
                elif i + 1 < len(args):
                    i += 1
                    opts[c] = args[i]
                else:
                    raise _Usage(f"sudo: option requires an argument -- {c}")
                break
            if c not in _FLAGS:
                raise _Usage(f"sudo: illegal option -- {c}")
            opts[c] = ""
            j += 1
        i += 1
    return opts, args[i:]


def _prompt(p: Proc, raw: str) -> str:
    host = p.mac.spec.hostname
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "%" and i + 1 < len(raw):
            c = raw[i + 1]
            out.append(
                {"p": p.user, "u": p.user, "U": "root", "h": host.split(".")[0], "H": host, "%": "%"}.get(
                    c, "%" + c
                )
            )
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return "".join(out)


async def _authenticate(p: Proc, opts: dict[str, str]) -> bool:
    """Ask for the user's password as sudo does without a tty. True when it was given."""
    if "n" in opts:
        p.err("sudo: a password is required")
        return False
    if "S" not in opts:
        p.err(_NO_TTY)
        p.err("sudo: a password is required")
        return False
    prompt = _prompt(p, opts.get("p", "Password:"))
    wrong = 0
    for _ in range(3):
        p.stderr.write(prompt)
        line = await p.stdin.readline()
        if not line:
            p.stderr.write("\n")
            p.err("sudo: no password was provided")
            if wrong:
                p.err(f"sudo: {wrong} incorrect password attempt{'s' if wrong > 1 else ''}")
            else:
                p.err("sudo: a password is required")
            return False
        given = line.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
        if p.mac.spec.password is not None and given == p.mac.spec.password:
            return True
        wrong += 1
        if wrong < 3:
            p.err("Sorry, try again.")
    p.err(f"sudo: {wrong} incorrect password attempts")
    return False


async def sudo(p: Proc) -> int:
    """Run a command as root per the host's sudo policy; see the module docstring for the messages."""
    try:
        opts, cmd = _parse(p.argv[1:])
    except _Usage as e:
        if e.msg:
            p.err(e.msg)
        p.err(SUDO_USAGE)
        return 1
    session = p.session
    if "h" in opts:
        p.out(SUDO_USAGE.replace("usage:", "usage:"))
        return 0
    if "V" in opts:
        p.out("Sudo version 1.9.13p2")
        return 0
    if "K" in opts or ("k" in opts and not cmd and "v" not in opts):
        if cmd:
            p.err(SUDO_USAGE)
            return 1
        session.sudo_validated_at = None
        return 0
    if "k" in opts:
        session.sudo_validated_at = None
    if not cmd and "v" not in opts and "i" not in opts and "s" not in opts:
        p.err(SUDO_USAGE)
        return 1
    target = opts.get("u", "root")
    if target not in ("root", "#0", p.mac.spec.user):
        p.err(f"sudo: unknown user {target}")
        p.err("sudo: error initializing audit plugin sudoers_audit")
        return 1
    policy = p.mac.spec.sudo
    if p.uid != 0:
        need_auth = policy in ("password", "none") and session.sudo_validated_at is None
        if policy == "none" and session.sudo_validated_at is None:
            need_auth = True
        if need_auth:
            if not await _authenticate(p, opts):
                return 1
            if policy == "none":
                p.err(f"{p.user} is not in the sudoers file.  This incident will be reported.")
                return 1
            session.sudo_validated_at = time.time()
    if "v" in opts and not cmd:
        return 0
    as_root = target in ("root", "#0")
    child_env = (
        dict(p.env)
        if "E" in opts
        else {
            k: v for k, v in p.env.items() if k in ("PATH", "TERM", "DISPLAY", "COLORTERM", "LANG", "LC_ALL")
        }
    )
    home = "/var/root" if as_root else f"/Users/{p.mac.spec.user}"
    user = "root" if as_root else p.mac.spec.user
    child_env.update(
        {
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/sh" if as_root else "/bin/zsh",
            "SUDO_USER": p.user,
            "SUDO_UID": str(p.uid),
            "SUDO_GID": "20",
            "SUDO_COMMAND": " ".join(cmd),
        }
    )
    child_env.setdefault("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
    while cmd and "=" in cmd[0] and not cmd[0].startswith("="):
        k, _, v = cmd.pop(0).partition("=")
        child_env[k] = v
    cwd = p.cwd
    if "i" in opts or "s" in opts:
        shell = "/bin/sh" if as_root else "/bin/zsh"
        cmd = [shell, "-c", " ".join(cmd)] if cmd else [shell]
        if "i" in opts:
            cwd = home
    child = replace(p, argv=cmd, env=child_env, uid=0 if as_root else p.mac.spec.uid, user=user, cwd=cwd)
    if p.runner is None:
        raise RuntimeError("sudo: started without a shell runner")
    try:
        return await p.runner.run_argv(child)
    except ExecError as e:
        if e.kind in ("notfound", "enoent"):
            p.err(f"sudo: {cmd[0]}: command not found")
        else:
            p.err(f"sudo: unable to execute {cmd[0]}: {e.strerror}")
        return 1


TOOLS: dict[str, Tool] = {"sudo": sudo}
