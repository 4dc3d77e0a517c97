"""`launchctl`: the legacy verbs (load/unload/list/start/stop) and the launchctl 2 verbs (bootstrap, bootout,
print, kickstart, enable, disable) on the system domain (macsim.client1e.launchd).

Real wording, from public transcripts: legacy verbs lose detail and print `Load failed: 5: Input/output
error` + "Try running `launchctl bootstrap` as root for richer errors." (haimgel/display-switch#85,
drduh/YubiKey-Guide#504), also for a double load; `Bootstrap failed: 5: Input/output error` exit 5 for a
service already bootstrapped (DeterminateSystems/nix-installer#1157); `Could not find service "X" in domain
for system` exit 113 from kickstart (nix-installer#960) and after "Bad request." from print
(NixOS/nix#9978). Anyone may read the system domain; changing it needs root. Usage errors exit 64
(EX_USAGE). Over SSH there is no GUI session, so `gui/<uid>` targets fail as "Could not find domain".
"""

from __future__ import annotations

from typing import Any

from macsim.client1e import launchd
from macsim.client1e.launchd import LaunchdError
from macsim.shell.proc import Proc

EX_USAGE = 64
SUBCOMMANDS = (
    "bootstrap",
    "bootout",
    "enable",
    "disable",
    "kickstart",
    "kill",
    "print",
    "list",
    "load",
    "unload",
    "start",
    "stop",
    "remove",
    "help",
    "version",
)
USAGE = "Usage: launchctl <subcommand> ... | help [subcommand]\n"
_VERB_USAGE = {
    "load": "Usage: launchctl load <service-path, service-path2, ...>",
    "unload": "Usage: launchctl unload <service-path, service-path2, ...>",
    "bootstrap": "Usage: launchctl bootstrap <domain-target> [service-path, service-path2, ...]",
    "bootout": (
        "Usage: launchctl bootout <domain-target> [service-path1, service-path2, ...] | <service-target>"
    ),
    "print": "Usage: launchctl print <domain-target> | <service-target>",
    "kickstart": "Usage: launchctl kickstart [-kp] <service-target>",
    "enable": "Usage: launchctl enable <service-target>",
    "disable": "Usage: launchctl disable <service-target>",
    "list": "Usage: launchctl list [-x] [label]",
    "start": "Usage: launchctl start <service-name>",
    "stop": "Usage: launchctl stop <service-name>",
}


def _usage(p: Proc, verb: str) -> int:
    p.err(_VERB_USAGE[verb])
    return EX_USAGE


def _legacy_fail(p: Proc, verb: str) -> int:
    hint = "bootstrap" if verb == "Load" else "bootout"
    p.err(f"{verb} failed: 5: Input/output error")
    p.err(f"Try running `launchctl {hint}` as root for richer errors.")
    return 5


def _not_found(p: Proc, label: str) -> int:
    p.err(f'Could not find service "{label}" in domain for system')
    return 113


def _service_target(p: Proc, target: str) -> str | None:
    """The label of a `system/<label>` target; prints the error and returns None otherwise."""
    parts = target.split("/")
    if parts[0] == "system" and len(parts) == 2 and parts[1]:
        return parts[1]
    if parts[0] in ("gui", "user", "login") and len(parts) >= 2:
        p.err(
            f"Could not find domain for user {parts[0]}: {parts[1]}"
            if parts[0] == "gui"
            else f"Could not find domain for {parts[0]}: {parts[1]}"
        )
        return None
    p.err("Unrecognized target specifier.")
    return None


async def _load(p: Proc, args: list[str]) -> int:
    write = "-w" in args
    force = "-F" in args
    plists = [a for a in args if a not in ("-w", "-F")]
    if not plists or any(a.startswith("-") for a in plists):
        return _usage(p, "load")
    if p.uid != 0:
        return _legacy_fail(p, "Load")
    status = 0
    async with p.mac.lock:
        for path in plists:
            try:
                spec = launchd.read_job(p.mac, p.path(path))
                if write:
                    launchd.set_disabled(p.mac, spec.label, False)
                launchd.load(p.mac, spec, force=force)
            except LaunchdError:
                status = _legacy_fail(p, "Load")
    return status


async def _unload(p: Proc, args: list[str]) -> int:
    write = "-w" in args
    plists = [a for a in args if a not in ("-w", "-F")]
    if not plists or any(a.startswith("-") for a in plists):
        return _usage(p, "unload")
    if p.uid != 0:
        return _legacy_fail(p, "Unload")
    status = 0
    async with p.mac.lock:
        for path in plists:
            try:
                spec = launchd.read_job(p.mac, p.path(path))
                if write:
                    launchd.set_disabled(p.mac, spec.label, True)
                if launchd.job(p.mac, spec.label) is None:
                    raise launchd.ENOSERVICE
                launchd.unload(p.mac, spec.label)
            except LaunchdError:
                status = _legacy_fail(p, "Unload")
    return status


async def _bootstrap(p: Proc, args: list[str]) -> int:
    if len(args) < 2:
        return _usage(p, "bootstrap")
    domain, plists = args[0], args[1:]
    if domain != "system":
        if domain.startswith(("gui/", "user/")):
            _service_target(p, domain + "/x")
            return 113
        p.err("Unrecognized target specifier.")
        return EX_USAGE
    if p.uid != 0:
        p.err("Bootstrap failed: 1: Operation not permitted")
        return 1
    async with p.mac.lock:
        for path in plists:
            try:
                launchd.load(p.mac, launchd.read_job(p.mac, p.path(path)))
            except LaunchdError as e:
                p.err(f"Bootstrap failed: {e.code}: {e.text}")
                return e.code
    return 0


async def _bootout(p: Proc, args: list[str]) -> int:
    if not args:
        return _usage(p, "bootout")
    labels: list[str] = []
    if args[0] == "system" and len(args) >= 2:
        try:
            labels = [launchd.read_job(p.mac, p.path(a)).label for a in args[1:]]
        except LaunchdError as e:
            p.err(f"Boot-out failed: {e.code}: {e.text}")
            return e.code
    elif len(args) == 1:
        label = _service_target(p, args[0])
        if label is None:
            return 113
        labels = [label]
    else:
        return _usage(p, "bootout")
    if p.uid != 0:
        p.err("Boot-out failed: 1: Operation not permitted")
        return 1
    async with p.mac.lock:
        for label in labels:
            if launchd.job(p.mac, label) is None:
                nf = launchd.ENOSERVICE
                p.err(f"Boot-out failed: {nf.code}: {nf.text}")
                return nf.code
            launchd.unload(p.mac, label)
    return 0


def _print_job(p: Proc, rec: dict[str, Any]) -> None:
    running = rec["pid"] is not None
    props = " | ".join(
        x for x, on in (("keepalive", rec["keep_alive"]), ("runatload", rec["run_at_load"])) if on
    )
    last = (
        "(never exited)"
        if rec["last_exit"] is None
        else ("78: EX_CONFIG" if rec["last_exit"] == 78 else str(rec["last_exit"]))
    )
    lines = [
        f"system/{rec['label']} = {{",
        f"\tactive count = {1 if running else 0}",
        f"\tpath = {rec['path']}",
        "\ttype = LaunchDaemon",
        f"\tstate = {'running' if running else 'not running'}",
        "",
        f"\tprogram = {rec['program']}",
        "\targuments = {",
        *[f"\t\t{a}" for a in rec["args"]],
        "\t}",
        "",
        "\tdefault environment = {",
        "\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin",
        "\t}",
        "",
        "\tdomain = system",
        "\tminimum runtime = 10",
        "\texit timeout = 5",
        f"\truns = {rec['runs']}",
        *([f"\tpid = {rec['pid']}"] if running else []),
        "\timmediate reason = speculative",
        f"\tlast exit code = {last}",
        "",
        f"\tproperties = {props}" if props else "\tproperties = (none)",
        "}",
    ]
    p.out("\n".join(lines))


async def _print(p: Proc, args: list[str]) -> int:
    if len(args) != 1:
        return _usage(p, "print")
    if args[0] == "system":
        p.out("system = {")
        p.out("\ttype = system")
        p.out("\tservices = {")
        for rec in p.mac.state.launchd.values():
            p.out(
                f"\t\t{rec['pid'] if rec['pid'] is not None else 0}\t{rec['last_exit'] or 0}\t{rec['label']}"
            )
        p.out("\t}")
        p.out("}")
        return 0
    label = _service_target(p, args[0])
    if label is None:
        return 113
    found = launchd.job(p.mac, label)
    if found is None:
        p.err("Bad request.")
        return _not_found(p, label)
    _print_job(p, found)
    return 0


async def _kickstart(p: Proc, args: list[str]) -> int:
    kill = print_pid = False
    targets: list[str] = []
    for a in args:
        if a.startswith("-") and len(a) > 1 and set(a[1:]) <= {"k", "p", "s"}:
            kill |= "k" in a
            print_pid |= "p" in a
        elif a.startswith("-"):
            return _usage(p, "kickstart")
        else:
            targets.append(a)
    if len(targets) != 1:
        return _usage(p, "kickstart")
    label = _service_target(p, targets[0])
    if label is None:
        return 113
    if launchd.job(p.mac, label) is None:
        return _not_found(p, label)
    if p.uid != 0:
        p.err(f'Could not kickstart service "{label}": 1: Operation not permitted')
        return 1
    async with p.mac.lock:
        rec = launchd.restart(p.mac, label) if kill else launchd.start(p.mac, label)
    if print_pid and rec["pid"] is not None:
        p.out(f"service spawned with pid: {rec['pid']}")
    return 0


async def _enable(p: Proc, verb: str, args: list[str]) -> int:
    if len(args) != 1:
        return _usage(p, verb)
    label = _service_target(p, args[0])
    if label is None:
        return 113
    if p.uid != 0:
        p.err(f"Could not {verb} service: 1: Operation not permitted")
        return 1
    async with p.mac.lock:
        launchd.set_disabled(p.mac, label, verb == "disable")
    return 0


def _list(p: Proc, args: list[str]) -> int:
    labels = [a for a in args if not a.startswith("-")]
    if len(labels) > 1 or any(a.startswith("-") and a != "-x" for a in args):
        return _usage(p, "list")
    # Without root, `launchctl list` shows the caller's own domain, not the system daemons.
    jobs = p.mac.state.launchd if p.uid == 0 else {}
    if labels:
        rec = jobs.get(labels[0])
        if rec is None:
            p.err(f'Could not find service "{labels[0]}" in domain for port')
            return 113
        out = [
            "{",
            '\t"LimitLoadToSessionType" = "System";',
            f'\t"Label" = "{rec["label"]}";',
            f'\t"OnDemand" = {"false" if rec["keep_alive"] else "true"};',
            f'\t"LastExitStatus" = {(rec["last_exit"] or 0) << 8};',
        ]
        if rec["pid"] is not None:
            out.append(f'\t"PID" = {rec["pid"]};')
        out += [
            f'\t"Program" = "{rec["program"]}";',
            '\t"ProgramArguments" = (',
            *[f'\t\t"{a}";' for a in rec["args"]],
            "\t);",
            "};",
        ]
        p.out("\n".join(out))
        return 0
    p.out("PID\tStatus\tLabel")
    for rec in jobs.values():
        p.out(f"{rec['pid'] if rec['pid'] is not None else '-'}\t{rec['last_exit'] or 0}\t{rec['label']}")
    return 0


async def _start_stop(p: Proc, verb: str, args: list[str]) -> int:
    if len(args) != 1:
        return _usage(p, verb)
    if p.uid != 0 or launchd.job(p.mac, args[0]) is None:
        # the legacy verbs act on the caller's domain: a system job is invisible without root
        p.err(f'Could not find service "{args[0]}" in domain for port')
        return 113
    async with p.mac.lock:
        if verb == "start":
            launchd.start(p.mac, args[0])
        else:
            launchd.stop(p.mac, args[0])
            if launchd.job(p.mac, args[0])["keep_alive"]:  # type: ignore[index]
                launchd.start(p.mac, args[0])  # KeepAlive: launchd respawns it
    return 0


async def launchctl(p: Proc) -> int:
    """The launchctl command (system domain)."""
    if len(p.argv) < 2:
        p.err(USAGE)
        return EX_USAGE
    verb, args = p.argv[1], p.argv[2:]
    if verb == "load":
        return await _load(p, args)
    if verb == "unload":
        return await _unload(p, args)
    if verb == "bootstrap":
        return await _bootstrap(p, args)
    if verb == "bootout":
        return await _bootout(p, args)
    if verb == "print":
        return await _print(p, args)
    if verb == "kickstart":
        return await _kickstart(p, args)
    if verb in ("enable", "disable"):
        return await _enable(p, verb, args)
    if verb == "list":
        return _list(p, args)
    if verb in ("start", "stop"):
        return await _start_stop(p, verb, args)
    if verb == "help":
        p.out(USAGE)
        return 0
    p.err(f"Unrecognized subcommand: {verb}")
    p.err(USAGE)
    return EX_USAGE
