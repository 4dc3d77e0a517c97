"""The Mac itself: macOS version, architecture, Rosetta, names, paths present, file hashes, free space."""

from __future__ import annotations

import re

from tasks.facts.common import FactsError, finished
from tasks.model import ProbeOutput


def parse_sw_vers(out: ProbeOutput) -> str:
    """`sw_vers`: the ProductVersion value."""
    finished(out, "sw_vers")
    m = re.search(r"^ProductVersion:\s*(\S+)\s*$", out.stdout, re.M)
    if m is None:
        raise FactsError(f"sw_vers: no ProductVersion in {out.stdout!r}")
    return m.group(1)


def parse_uname_m(out: ProbeOutput) -> str:
    """`uname -m`: the machine hardware name (arm64, x86_64)."""
    if finished(out, "uname -m") != 0 or not out.stdout.strip():
        raise FactsError(f"uname -m failed: {out.stderr.strip()}")
    return out.stdout.strip()


def parse_rosetta(out: ProbeOutput) -> bool:
    """`arch -x86_64 /usr/bin/true`: exit 0 means the Mac can run Intel code (Intel, or Rosetta 2)."""
    return finished(out, "arch -x86_64") == 0


def parse_hostname(out: ProbeOutput) -> str:
    """`hostname`: configd's HostName when set, else a DHCP or reverse-DNS name, else LocalHostName.local
    (see tasks/hostnames.py for which name a certificate must carry)."""
    if finished(out, "hostname") != 0 or not out.stdout.strip():
        raise FactsError(f"hostname failed: {out.stderr.strip()}")
    return out.stdout.strip()


def parse_scutil_get(out: ProbeOutput) -> str | None:
    """`scutil --get KEY`: the value, or None when it is not set ("KEY: not set" on stderr, exit 1: chef/chef
    pull request 10724 quotes `scutil --get HostName` so on a real Mac; any other failure is an error)."""
    if finished(out, "scutil --get") != 0:
        if "not set" in out.stderr or "not set" in out.stdout:
            return None
        raise FactsError(f"scutil --get failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout.strip() or None


def parse_ls_d(out: ProbeOutput) -> tuple[str, ...]:
    """`ls -1d PATH...`: the paths that exist (ls prints each existing operand on its own line and reports
    a missing one on stderr with exit 1)."""
    status = finished(out, "ls -1d")
    if status not in (0, 1):
        raise FactsError(f"ls -1d failed: {out.stderr.strip()}")
    return tuple(sorted(line for line in out.stdout.splitlines() if line.strip()))


def parse_shasum(out: ProbeOutput) -> str | None:
    """`shasum -a 256 FILE`: the lower-case hex digest, or None when the file is absent."""
    if finished(out, "shasum") != 0:
        return None
    m = re.match(r"^([0-9a-fA-F]{64})\s", out.stdout)
    if m is None:
        raise FactsError(f"shasum: unexpected output {out.stdout!r}")
    return m.group(1).lower()


def parse_df_k(out: ProbeOutput) -> int:
    """`df -k /`: the Available column of the root volume, in bytes."""
    if finished(out, "df -k") != 0:
        raise FactsError(f"df -k / failed: {out.stderr.strip()}")
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        raise FactsError(f"df -k /: unexpected output {out.stdout!r}")
    header, row = lines[0].split(), lines[-1].split()
    # the file system name may contain blanks: count columns from the right
    from_right = 6 if "iused" in header else 3
    try:
        return int(row[-from_right]) * 1024
    except (IndexError, ValueError):
        raise FactsError(f"df -k /: unexpected row {lines[-1]!r}") from None
