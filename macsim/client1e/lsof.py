"""`/usr/sbin/lsof`, only as far as the verify step uses it: the 1E Client daemon's ESTABLISHED TCP
connections, in field output.

Accepted (lsof(8), lsof-org/lsof Lsof.8): -n (no host names), -P (no port names), -a (AND the selections),
-p PID (one PID), -i with the protocol TCP (`-iTCP`), -s TCP:ESTABLISHED (`-sTCP:ESTABLISHED`), -F with
field characters among `pfn` (`-Fn`). Anything else is a usage error: macsim lists no other open files.

Output (Lsof.8 "OUTPUT FOR OTHER PROGRAMS"): one field per line, its first character the field id; `p`
(process ID) and `f` (file descriptor) are always selected; `n` holds `LOCAL->REMOTE` for a connected socket
(numeric with -n/-P). Exit 1 when nothing is listed (Lsof.8 DIAGNOSTICS: 1 on "failure to locate ... PIDs"
or files asked for), 0 otherwise. Without root only the caller's own processes are visible: the daemon runs
as root, so an unprivileged lsof lists nothing for it (exit 1).

Invented: the addresses. macsim resolves no names, so a Switch given by name is shown at 203.0.113.10
(TEST-NET-3, RFC 5737) and the Mac's own end at 192.0.2.50 (TEST-NET-1); an IP literal Switch is shown as is.
"""

from __future__ import annotations

import ipaddress

from macsim.client1e import paths
from macsim.client1e.conf import first_switch
from macsim.shell.proc import Proc

# The usage lines real lsof prints after an option error (shortened; exact wording unverified).
_USAGE = (
    "lsof 4.91\n"
    " usage: [-?abhKlnNoOPRtUvVX] [+|-c c] [+|-d s] [+D D] [+|-E] [+|-e s] [+|-f[gG]]\n"
    " [-F [f]] [-g [s]] [-i [i]] [+|-L [l]] [+m [m]] [+|-M] [-o [o]] [-p s]\n"
    " [+|-r [t]] [-s [p:s]] [-S [t]] [-T [t]] [-u s] [+|-w] [-x [fl]] [--] [names]\n"
    "Use the ``-h'' option to get more help information."
)
NAMED_SWITCH_ADDRESS = "203.0.113.10"
LOCAL_ADDRESS = "192.0.2.50"
SOCKET_FD = 9  # invented: the descriptor the daemon's Switch connection shows as
DIALECTS_WITH_SOCKET = ("standard", "reworded", "no-start-line", "socket-only")


class _Usage(Exception):
    pass


def _parse(args: list[str]) -> tuple[int, str]:
    """(PID, fields) from the accepted form; _Usage for anything else."""
    pid: int | None = None
    fields = ""
    seen: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-") or a == "-":
            raise _Usage(f"lsof: names are not supported by macsim: {a}")
        if a == "-p" or a == "-s" or a == "-i":
            if i + 1 >= len(args):
                raise _Usage(f"lsof: no value for {a}")
            a, i = a + args[i + 1], i + 1
        if a.startswith("-p"):
            if not a[2:].isdigit():
                raise _Usage(f"lsof: illegal process ID: {a[2:]}")
            pid = int(a[2:])
            seen.add("p")
        elif a.startswith("-i"):
            if a[2:].upper() != "TCP":
                raise _Usage(f"lsof: unsupported -i address for macsim: {a[2:]}")
            seen.add("i")
        elif a.startswith("-s"):
            if a[2:].upper() != "TCP:ESTABLISHED":
                raise _Usage(f"lsof: unsupported -s state list for macsim: {a[2:]}")
            seen.add("s")
        elif a.startswith("-F"):
            if not a[2:] or set(a[2:]) - set("pfn"):
                raise _Usage(f"lsof: unsupported -F fields for macsim: {a[2:]}")
            fields = a[2:]
        else:
            for c in a[1:]:
                if c not in "nPa":
                    raise _Usage(f"lsof: illegal option character: {c}")
                seen.add(c)
        i += 1
    if pid is None or not {"a", "i", "s", "n", "P"} <= seen or not fields:
        raise _Usage("lsof: macsim supports only -nP -a -p PID -iTCP -sTCP:ESTABLISHED -F n")
    return pid, fields


def _remote(mac_conf_switch: str) -> tuple[str, str]:
    host, _, port = first_switch(mac_conf_switch).rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        shown = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        shown = NAMED_SWITCH_ADDRESS
    return shown, port


async def lsof(p: Proc) -> int:
    try:
        pid, _fields = _parse(p.argv[1:])
    except _Usage as e:
        p.err(str(e))
        p.err(_USAGE)
        return 1
    rec = p.mac.state.launchd.get(paths.LABEL)
    verdict = (rec or {}).get("verdict") or {}
    if (
        p.uid != 0
        or rec is None
        or rec.get("pid") != pid
        or not verdict.get("connected")
        or p.mac.spec.faults.client_log not in DIALECTS_WITH_SOCKET
        or not verdict.get("switch")
    ):
        return 1
    host, port = _remote(str(verdict["switch"]))
    local = f"{LOCAL_ADDRESS}:{49152 + pid % 16384}"
    p.out(f"p{pid}\nf{SOCKET_FD}\nn{local}->{host}:{port}")
    return 0
