"""A Mac's names and which of them a client certificate must carry. Pure: names in, a judgement out.

A Mac has three names (scutil(8) `--get`), and `hostname` prints a fourth view of them:
- ComputerName: the friendly name ("Frankie's MacBook Pro"); never a DNS name.
- LocalHostName: the Bonjour name; the Sharing pane shows "Computers on your local network can access your
  computer at: LocalHostName.local" (the *Sharing-pane name*).
- HostName: unset on most Macs (`scutil --get HostName` then says "HostName: not set" on stderr, exit 1:
  chef/chef pull request 10724 quotes it from a real Mac).
- `hostname` (gethostname(3)): configd's order: HostName when set, else the name the DHCP server gave or a
  reverse-DNS name of the primary address, else LocalHostName.local (Apple's Mac OS X Server worksheet, as
  quoted on excitedcuriosity.wordpress.com 2007-08-24 "Mac OS X hostname determination"; a Mac whose
  HostName is not set and whose `hostname` is a DHCP name: github.com/tofrankie/blog issue 29).

Which one the 1E Client compares is not documented publicly, so the rule is a setting (`[certs] name_rule`):
- sharing: the certificate's CN or a SAN DNS name equals LocalHostName.local;
- hostname: it equals what `hostname` prints (whatever configd took it from);
- either (default): the Sharing-pane name, or — where HostName is set — `hostname`. (A DHCP or reverse-DNS
  name changes with the network: it is accepted only by the `hostname` rule.)
Every comparison is exact and case-sensitive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAME_RULES = ("sharing", "hostname", "either")
DEFAULT_NAME_RULE = "either"
SHARING = "sharing"
HOSTNAME = "hostname"


def check_rule(rule: str) -> str:
    if rule not in NAME_RULES:
        raise ValueError(f"name_rule must be one of {', '.join(NAME_RULES)}, got {rule!r}")
    return rule


@dataclass(frozen=True)
class MacNames:
    """What a Mac says its names are (see the module docstring)."""

    hostname: str
    local_host_name: str | None
    host_name: str | None  # None: HostName is not set
    computer_name: str | None = None

    @property
    def sharing(self) -> str | None:
        """The Sharing-pane name: LocalHostName + ".local" (None when LocalHostName is unknown)."""
        return f"{self.local_host_name}.local" if self.local_host_name else None

    @property
    def hostname_source(self) -> str:
        """Where `hostname` comes from, in configd's order (as far as the names show it)."""
        if self.host_name is not None:
            return "HostName"
        if self.hostname == self.sharing:
            return "LocalHostName.local"
        return "a DHCP or reverse-DNS name"

    @property
    def two_names(self) -> bool:
        """The Sharing-pane name and `hostname` differ (a record must say which one a certificate names)."""
        return self.sharing is not None and self.sharing != self.hostname

    def accepted(self, rule: str) -> tuple[tuple[str, str], ...]:
        """The (kind, name) pairs a certificate may carry under `rule`, in order of preference."""
        check_rule(rule)
        out: list[tuple[str, str]] = []
        if rule in (SHARING, "either") and self.sharing is not None:
            out.append((SHARING, self.sharing))
        if rule == HOSTNAME or (rule == "either" and self.host_name is not None):
            if self.hostname not in (n for _, n in out):
                out.append((HOSTNAME, self.hostname))
        return tuple(out)

    def preferred(self, rule: str) -> str:
        """The name to ask a certificate for under `rule`: the first it accepts, else `hostname`'s."""
        wanted = self.accepted(rule)
        return wanted[0][1] if wanted else self.hostname

    def label(self, kind: str) -> str:
        if kind == SHARING:
            return "the Sharing-pane name (LocalHostName.local)"
        return f"the name `hostname` prints (from {self.hostname_source})"

    def as_json(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "local_host_name": self.local_host_name,
            "host_name": self.host_name,
            "computer_name": self.computer_name,
            "sharing_name": self.sharing,
        }

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> MacNames | None:
        """From a stored facts document (MacFacts.as_json); None when it holds no `hostname`. Facts stored
        before HostName was gathered lack `host_name`: a `hostname` other than the Sharing-pane name is then
        taken as a set HostName (the common reason they differ)."""
        hostname = facts.get("hostname")
        if not isinstance(hostname, str) or not hostname:
            return None
        local = facts.get("local_host_name")
        local = local if isinstance(local, str) and local else None
        if "host_name" in facts:
            host_name = facts["host_name"] if isinstance(facts["host_name"], str) else None
        else:
            host_name = hostname if hostname != (f"{local}.local" if local else None) else None
        computer = facts.get("computer_name")
        return cls(hostname, local, host_name or None, computer if isinstance(computer, str) else None)


@dataclass(frozen=True)
class NameMatch:
    """How a certificate's names (CN + SAN DNS) meet a Mac's names under a rule.

    kind/name: the Mac name the certificate carries (None: none of the accepted ones). folded: a
    certificate name equal to an accepted one but for case."""

    names: MacNames
    rule: str
    cert_names: tuple[str, ...]
    kind: str | None
    name: str | None
    folded: tuple[str, str] | None = None  # (certificate's name, the Mac's name)

    @property
    def ok(self) -> bool:
        return self.name is not None

    @property
    def wanted(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.names.accepted(self.rule))

    def describe(self) -> str:
        """Which name the certificate carries; when the Mac has two names, the other one too."""
        assert self.kind is not None and self.name is not None
        text = f"the certificate names {self.name!r}, {self.names.label(self.kind)}"
        if self.names.two_names:
            other = self.names.hostname if self.kind == SHARING else self.names.sharing
            what = "`hostname` prints" if self.kind == SHARING else "the Sharing-pane name is"
            text += f", while {what} {other!r}"
        return text

    def problem(self) -> str:
        shown = ", ".join(repr(n) for n in self.cert_names) or "no CN and no SAN DNS name"
        wanted = " or ".join(repr(n) for n in self.wanted) or "(none known)"
        return f"the certificate names {shown} but the Mac's {_rule_words(self.rule)} is {wanted}"

    def hint(self) -> str:
        if self.folded is not None:
            return (
                f"the names differ only in case ({self.folded[0]!r}): the match is case-sensitive; reissue "
                f"the certificate for exactly {self.folded[1]!r}"
            )
        h = self.names.hostname
        if h in self.cert_names and self.rule != HOSTNAME:
            return (
                f"the certificate names what `hostname` prints ({h!r}, from {self.names.hostname_source}), "
                f"which name_rule = {self.rule} does not accept: reissue it for "
                f"{' or '.join(repr(n) for n in self.wanted) or 'the Sharing-pane name'}, or set "
                "[certs] name_rule = hostname if the client compares that name"
            )
        if not self.wanted:
            return "the Mac reports no LocalHostName: set one, or set [certs] name_rule = hostname"
        return (
            f"reissue the certificate for {' or '.join(repr(n) for n in self.wanted)}, or fix the Mac's name "
            "(scutil --set LocalHostName / HostName); `orchestrate inventory probe` shows every name"
        )

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "matched": self.kind, "name": self.name, "accepted": list(self.wanted)}


def _rule_words(rule: str) -> str:
    return {
        SHARING: "Sharing-pane name (LocalHostName.local)",
        HOSTNAME: "host name (`hostname`)",
    }.get(rule, "name (Sharing-pane name, or `hostname` where HostName is set)")


def match_names(cert_names: Sequence[str], names: MacNames, rule: str) -> NameMatch:
    """Judge a certificate's CN + SAN DNS names against a Mac's names under `rule` (exact, case-sensitive)."""
    cert = tuple(dict.fromkeys(cert_names))
    accepted = names.accepted(rule)
    for kind, name in accepted:
        if name in cert:
            return NameMatch(names, rule, cert, kind, name)
    folded = next(
        ((c, name) for _, name in accepted for c in cert if c.lower() == name.lower()),
        None,
    )
    return NameMatch(names, rule, cert, None, None, folded)
