"""System information tools, answered from the host's spec: id, whoami, sw_vers, uname, arch, scutil,
hostname, sysctl, date, pwd."""

from __future__ import annotations

import time
from dataclasses import replace

from macsim.shell.fileaccess import usage
from macsim.shell.options import UsageError, getopt
from macsim.shell.proc import Proc, Tool
from macsim.shell.resolve import ExecError

_DARWIN = {"15": "24", "14": "23", "13": "22", "12": "21", "11": "20"}  # macOS major -> Darwin major


def _darwin_release(p: Proc) -> str:
    parts = p.mac.spec.macos_version.split(".")
    major = _DARWIN.get(parts[0], "23")
    minor = parts[1] if len(parts) > 1 else "0"
    return f"{major}.{minor}.0"


def _names(p: Proc) -> tuple[str, str, int]:
    """(user, primary group, gid) of the caller."""
    if p.uid == 0:
        return "root", "wheel", 0
    return p.user, "staff", 20


async def id_(p: Proc) -> int:
    u = (
        "usage: id [user]\n       id -A\n       id -F [user]\n       id -G [-n] [user]\n       id -M\n"
        "       id -P [user]\n       id -c\n       id -g [-nr] [user]\n"
        "       id -p [user]\n       id -u [-nr] [user]"
    )
    try:
        opts, args = getopt(p.argv[1:], "AFGMPcgnpru")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    user, group, gid = _names(p)
    uid = p.uid
    if args:
        who = args[0]
        if who in ("root", "0"):
            user, group, gid, uid = "root", "wheel", 0, 0
        elif who in (p.mac.spec.user, str(p.mac.spec.uid)):
            user, group, gid, uid = p.mac.spec.user, "staff", 20, p.mac.spec.uid
        else:
            p.err(f"id: {who}: no such user")
            return 1
    n = "n" in flags
    if "u" in flags:
        p.out(user if n else str(uid))
    elif "g" in flags:
        p.out(group if n else str(gid))
    elif "G" in flags:
        groups = (
            [(0, "wheel"), (1, "daemon"), (2, "kmem"), (3, "sys")]
            if uid == 0
            else [(20, "staff"), (12, "everyone"), (61, "localaccounts"), (80, "admin")]
        )
        p.out(" ".join(g if n else str(i) for i, g in groups))
    elif n:
        return usage(p, u)
    else:
        extra = (
            "0(wheel),1(daemon),2(kmem),3(sys)"
            if uid == 0
            else "20(staff),12(everyone),61(localaccounts),80(admin)"
        )
        p.out(f"uid={uid}({user}) gid={gid}({group}) groups={extra}")
    return 0


async def whoami(p: Proc) -> int:
    if len(p.argv) > 1:
        return usage(p, "usage: whoami")
    p.out(_names(p)[0])
    return 0


async def sw_vers(p: Proc) -> int:
    spec = p.mac.spec
    args = p.argv[1:]
    values = {
        "-productName": "macOS",
        "-productVersion": spec.macos_version,
        "-buildVersion": spec.macos_build,
        "--productName": "macOS",
        "--productVersion": spec.macos_version,
        "--buildVersion": spec.macos_build,
    }
    if not args:
        # One tab after each label up to macOS 12, two from macOS 13: sw_vers captured over SSH from real
        # 11.7.2, 12.7.6 and 15.7.1 hosts (github.com/fizzed/jne src/test/resources/fixtures/platforms/
        # macos11, macos12-arm64, macos15-arm64/exec-swvers.txt); public 13.x and 14.x transcripts show two.
        tab = "\t\t" if int(spec.macos_version.split(".")[0]) >= 13 else "\t"
        p.out(
            f"ProductName:{tab}macOS\nProductVersion:{tab}{spec.macos_version}\nBuildVersion:{tab}{spec.macos_build}"
        )
        return 0
    if len(args) == 1 and args[0] in values:
        p.out(values[args[0]])
        return 0
    return usage(p, "usage: sw_vers [-productName|-productVersion|-productVersionExtra|-buildVersion]")


async def uname(p: Proc) -> int:
    try:
        opts, args = getopt(p.argv[1:], "amnoprsv")
    except UsageError as e:
        return usage(p, "usage: uname [-amnoprsv]", e)
    if args:
        return usage(p, "usage: uname [-amnoprsv]")
    flags = {o for o, _ in opts} or {"s"}
    if "a" in flags:
        flags = set("snrvm")
    arm = p.mac.spec.arch == "arm64"
    rel = _darwin_release(p)
    kernel = "RELEASE_ARM64_T6000" if arm else "RELEASE_X86_64"
    version = f"Darwin Kernel Version {rel}: Thu Jun 20 20:38:33 PDT 2024; root:xnu-10063.141.1~2/{kernel}"
    fields = {
        "s": "Darwin",
        "o": "Darwin",
        "n": p.mac.spec.hostname,
        "r": rel,
        "v": version,
        "m": p.mac.spec.arch,
        "p": "arm" if arm else "i386",
    }
    p.out(" ".join(fields[c] for c in "sonrvmp" if c in flags))
    return 0


async def arch(p: Proc) -> int:
    args = p.argv[1:]
    arm = p.mac.spec.arch == "arm64"
    if not args:
        # arch prints i386 on Intel Macs (arch(1))
        p.out("arm64" if arm else "i386")
        return 0
    want = None
    if args[0] in ("-x86_64", "-arm64", "-arm64e", "-i386"):
        want, rest = args[0][1:], args[1:]
    elif args[0] == "-arch" and len(args) > 1:
        want, rest = args[1], args[2:]
    else:
        return usage(
            p,
            "usage: arch\n       arch {-arch_name | -arch arch_name} ... [-c] [-d envname] ..."
            " [-e envname=value] ... [-h] prog [arg ...]",
        )
    if not rest:
        return usage(
            p,
            "usage: arch\n       arch {-arch_name | -arch arch_name} ... [-c] [-d envname] ..."
            " [-e envname=value] ... [-h] prog [arg ...]",
        )
    runnable = (
        want == p.mac.spec.arch
        or (want in ("x86_64", "i386") and arm and p.mac.state.rosetta)
        or (want == "arm64e" and arm)
    )
    if not runnable:
        p.err(f"arch: posix_spawnp: {rest[0]}: Bad CPU type in executable")
        return 1
    assert p.runner is not None
    child = _child(p, rest)
    try:
        return await p.runner.run_argv(child)
    except ExecError as e:
        p.err(f"arch: posix_spawnp: {rest[0]}: {e.strerror}")
        return 1


def _child(p: Proc, argv: list[str]) -> Proc:
    return replace(p, argv=argv, env=dict(p.env))


_SCUTIL_KEYS = ("ComputerName", "LocalHostName", "HostName")


async def scutil(p: Proc) -> int:
    args = p.argv[1:]
    spec = p.mac.spec
    if len(args) == 2 and args[0] == "--get":
        key = args[1]
        values = {
            "ComputerName": spec.computer_name or spec.name,
            "LocalHostName": spec.effective_local_host_name,
            "HostName": spec.host_name,
        }
        if key not in values:
            # an unknown pref is a usage error: usage() exits EX_USAGE (Apple configd, scutil.tproj/scutil.c)
            return usage(p, "usage: scutil --get pref", status=64)
        v = values[key]
        if v is None:
            # on stderr, exit 1: chef/chef pull request 10724 quotes a real Mac's `scutil --get HostName`
            p.err(f"{key}: not set")
            return 1
        p.out(v)
        return 0
    if len(args) in (2, 3) and args[0] == "--set" and args[1] in _SCUTIL_KEYS:
        if p.uid != 0:
            p.err("SCPreferencesCommitChanges() failed: Permission denied")
            return 1
        value = args[2] if len(args) == 3 else (await p.stdin.readline()).decode().strip()
        if args[1] == "HostName":
            spec.host_name = value or None
        elif args[1] == "LocalHostName":
            spec.local_host_name = value
        else:
            spec.computer_name = value
        return 0
    p.err("usage: scutil --get pref\n       scutil --set pref [newval]")
    return 64


async def hostname(p: Proc) -> int:
    try:
        opts, args = getopt(p.argv[1:], "fsd")
    except UsageError as e:
        return usage(p, "usage: hostname [-f] [-s | -d] [name-of-host]", e)
    flags = {o for o, _ in opts}
    if args:
        if p.uid != 0:
            p.err("hostname: sethostname: Operation not permitted")
            return 1
        p.mac.spec.host_name = args[0]
        return 0
    name = p.mac.spec.hostname
    if "s" in flags:
        name = name.split(".", 1)[0]
    elif "d" in flags:
        name = name.split(".", 1)[1] if "." in name else ""
    p.out(name)
    return 0


def _sysctl_values(p: Proc) -> dict[str, str]:
    arm = p.mac.spec.arch == "arm64"
    return {
        "hw.optional.arm64": "1" if arm else "0",
        "sysctl.proc_translated": "0",
        "machdep.cpu.brand_string": "Apple M1" if arm else "Intel(R) Core(TM) i7-8700B CPU @ 3.20GHz",
        "hw.memsize": str(16 * 1024**3),
        "hw.ncpu": "8",
        "hw.machine": "arm64" if arm else "x86_64",
        "kern.hostname": p.mac.spec.hostname,
        "kern.osproductversion": p.mac.spec.macos_version,
        "kern.osversion": p.mac.spec.macos_build,
        "kern.ostype": "Darwin",
        "kern.osrelease": _darwin_release(p),
    }


async def sysctl(p: Proc) -> int:
    u = (
        "usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n"
        "       sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] -a"
    )
    try:
        opts, names = getopt(p.argv[1:], "bdehiNnoqTtWxaB:f:")
    except UsageError as e:
        return usage(p, u, e)
    flags = {o for o, _ in opts}
    values = _sysctl_values(p)
    if "a" in flags:
        names = sorted(values)
    if not names:
        return usage(p, u)
    status = 0
    for name in names:
        if "=" in name:
            p.err(
                f"sysctl: {name.split('=')[0]}: Operation not permitted"
                if p.uid
                else f"sysctl: {name.split('=')[0]}: Read-only variable"
            )
            status = 1
            continue
        if name == "hw.optional.arm64" and p.mac.spec.arch != "arm64":
            # Intel Macs have no such node
            if "i" not in flags:
                p.err(f"sysctl: unknown oid '{name}'")
                status = 1
            continue
        if name not in values:
            if "i" not in flags:
                p.err(f"sysctl: unknown oid '{name}'")
                status = 1
            continue
        p.out(values[name] if "n" in flags else f"{name}: {values[name]}")
    return status


async def date(p: Proc) -> int:
    args = p.argv[1:]
    utc = False
    while args and args[0] in ("-u", "-j", "-n", "-R"):
        utc = utc or args[0] == "-u"
        args = args[1:]
    if args and args[0].startswith("-"):
        p.err(f"date: illegal option -- {args[0][1:2]}")
        return usage(
            p,
            "usage: date [-jnRu] [-I[date|hours|minutes|seconds]] [-f input_fmt]\n"
            "            [-r filename|seconds] [-v[+|-]val[y|m|w|d|H|M|S]]\n"
            "            [[[[mm]dd]HH]MM[[cc]yy][.SS] | new_date] [+output_fmt]",
        )
    now = time.time()
    tm = time.gmtime(now) if utc else time.localtime(now)
    if args and args[0].startswith("+"):
        fmt = args[0][1:].replace("%s", str(int(now)))
        p.out(time.strftime(fmt, tm))
        return 0
    if args:
        if p.uid != 0:
            p.err("date: settimeofday (timeval): Operation not permitted")
            return 1
        return 0
    p.out(time.strftime("%a %b %e %H:%M:%S %Z %Y", tm))
    return 0


async def pwd(p: Proc) -> int:
    try:
        getopt(p.argv[1:], "LP")
    except UsageError as e:
        return usage(p, "usage: pwd [-L | -P]", e)
    p.out(p.cwd)
    return 0


TOOLS: dict[str, Tool] = {
    "id": id_,
    "whoami": whoami,
    "sw_vers": sw_vers,
    "uname": uname,
    "arch": arch,
    "scutil": scutil,
    "hostname": hostname,
    "sysctl": sysctl,
    "date": date,
    "pwd": pwd,
}
