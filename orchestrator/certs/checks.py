"""The client certificate checks: facts in, a verdict out. Pure: no I/O, no clock (`now` is a parameter).

What 1E's procedure and macOS require of a device's client certificate: the subject CN (or a SAN DNS name)
equal to the Mac's host name exactly (case-sensitive), EKU client authentication, key usage digital
signature + key encipherment, a private key that belongs to it, within its validity, and a chain that
reaches a CA the operator registered (`certs ca add`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.certs.x509info import CertFacts
from tasks.hostnames import DEFAULT_NAME_RULE, MacNames, NameMatch, match_names

REQUIRED_EKU = "clientAuth"
REQUIRED_KU = ("digitalSignature", "keyEncipherment")
_MAX_CHAIN = 10


class CertStatus(StrEnum):
    """A device's certificate state. Declaration order is precedence: the first problem found names it."""

    NO_CERTIFICATE = "no certificate"
    NO_PRIVATE_KEY = "no private key"
    NAME_MISMATCH = "name mismatch"
    NOT_YET_VALID = "not yet valid"
    EXPIRED = "expired"
    WRONG_USAGE = "wrong usage"
    CHAIN_INCOMPLETE = "chain incomplete"
    CA_UNKNOWN = "CA unknown"
    EXPIRING = "expiring"  # a warning: usable today
    OK = "ok"


_PRECEDENCE = {s: i for i, s in enumerate(CertStatus)}


@dataclass(frozen=True)
class ClientCertFacts:
    """What was read from a device's PKCS#12: the identity's certificate, its key, the other certificates."""

    cert: CertFacts
    has_private_key: bool
    key_matches: bool
    chain: tuple[CertFacts, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "cert": self.cert.to_json(),
            "has_private_key": self.has_private_key,
            "key_matches": self.key_matches,
            "chain": [c.to_json() for c in self.chain],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClientCertFacts:
        """Raises KeyError naming a missing fact."""
        return cls(
            cert=CertFacts.from_json(d["cert"]),
            has_private_key=d["has_private_key"],
            key_matches=d["key_matches"],
            chain=tuple(CertFacts.from_json(c) for c in d["chain"]),
        )


@dataclass(frozen=True)
class Finding:
    status: CertStatus
    reason: str


@dataclass(frozen=True)
class CertVerdict:
    """The outcome: the most important status, its reason, and every problem found."""

    status: CertStatus
    reason: str
    expected_hostname: str
    findings: tuple[Finding, ...] = ()
    # judged against the Mac's live names (inventory probe or a run's facts): which name it carries
    names: NameMatch | None = None

    @property
    def usable(self) -> bool:
        """True when a rollout may use this certificate (ok, or expiring soon)."""
        return self.status in (CertStatus.OK, CertStatus.EXPIRING)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "reason": self.reason,
            "expected_hostname": self.expected_hostname,
            "findings": [{"status": str(f.status), "reason": f.reason} for f in self.findings],
            "names": (
                {**self.names.names.as_json(), **self.names.as_json()} if self.names is not None else None
            ),
        }


def _day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M UTC")


def check_name(cert: CertFacts, expected_hostname: str) -> Finding | None:
    """None when the subject CN or a SAN DNS name equals expected_hostname exactly; else the mismatch."""
    names = ([cert.subject_cn] if cert.subject_cn else []) + [n for n in cert.san_dns if n != cert.subject_cn]
    if expected_hostname in names:
        return None
    shown = ", ".join(repr(n) for n in names) or "no CN and no SAN DNS name"
    if any(n.lower() == expected_hostname.lower() for n in names):
        return Finding(
            CertStatus.NAME_MISMATCH,
            f"certificate names {shown} but the Mac's host name is {expected_hostname!r}: only the case "
            f"differs and the match is case-sensitive; issue it for exactly {expected_hostname!r}",
        )
    return Finding(
        CertStatus.NAME_MISMATCH,
        f"certificate names {shown}, not this Mac's host name; the subject CN or a SAN DNS name must be "
        f"exactly {expected_hostname!r}",
    )


def cert_names(cert: CertFacts) -> tuple[str, ...]:
    """The subject CN and the SAN DNS names, each once."""
    return tuple(dict.fromkeys(([cert.subject_cn] if cert.subject_cn else []) + list(cert.san_dns)))


def check_live_names(match: NameMatch) -> Finding | None:
    """None when the certificate carries one of the Mac's accepted live names (tasks/hostnames)."""
    if match.ok:
        return None
    return Finding(CertStatus.NAME_MISMATCH, f"{match.problem()}: {match.hint()}")


def check_usage(cert: CertFacts) -> Finding | None:
    """None when EKU lists clientAuth and KU allows digitalSignature and keyEncipherment; else what lacks."""
    problems: list[str] = []
    if cert.eku is None:
        problems.append(f"no extended key usage extension (it must list {REQUIRED_EKU})")
    elif REQUIRED_EKU not in cert.eku:
        problems.append(
            f"extended key usage is {', '.join(cert.eku) or 'empty'}; it must include {REQUIRED_EKU}"
        )
    if cert.key_usage is None:
        problems.append(f"no key usage extension (it must allow {' and '.join(REQUIRED_KU)})")
    else:
        missing = [u for u in REQUIRED_KU if u not in cert.key_usage]
        if missing:
            problems.append(f"key usage lacks {' and '.join(missing)}")
    if not problems:
        return None
    return Finding(CertStatus.WRONG_USAGE, "; ".join(problems))


def check_validity(
    cert: CertFacts, now: datetime, warn_days: int, what: str = "certificate"
) -> Finding | None:
    """None when cert is valid at now and beyond warn_days; else not yet valid / expired / expiring."""
    if now < cert.not_before:
        return Finding(CertStatus.NOT_YET_VALID, f"{what} is valid only from {_day(cert.not_before)}")
    if now > cert.not_after:
        return Finding(CertStatus.EXPIRED, f"{what} expired on {_day(cert.not_after)}")
    left = cert.not_after - now
    if left <= timedelta(days=warn_days):
        return Finding(
            CertStatus.EXPIRING,
            f"{what} expires on {_day(cert.not_after)}, in {left.days} days (warning at {warn_days} days)",
        )
    return None


def _issues(child: CertFacts, parent: CertFacts) -> bool:
    """True when parent can be child's issuer (name match, and key ids agree when both are present)."""
    if parent.subject != child.issuer:
        return False
    return not (child.authority_key_id and parent.subject_key_id) or (
        child.authority_key_id == parent.subject_key_id
    )


def check_chain(
    cert: CertFacts, chain: Sequence[CertFacts], known_cas: Sequence[CertFacts], now: datetime
) -> Finding | None:
    """None when cert chains, through the certificates in its PFX, to a known CA; else why not.

    A known CA anchors the chain wherever it appears (root or intermediate). A self-signed root that is
    not known gives CA unknown; an issuer found nowhere gives chain incomplete.
    """
    known = {c.sha256 for c in known_cas}
    cur = cert
    for _ in range(_MAX_CHAIN):
        if cur is not cert and cur.sha256 in known:
            return None
        anchor = next((c for c in known_cas if _issues(cur, c)), None)
        if anchor is not None:
            return None
        if cur is not cert and cur.self_signed:
            return Finding(
                CertStatus.CA_UNKNOWN,
                f"the chain ends at root {cur.subject!r} (SHA-256 {cur.sha256}), which is not a known CA; "
                "add it with `orchestrate certs ca add` if you trust it",
            )
        if cur.self_signed:
            return Finding(CertStatus.CA_UNKNOWN, "the certificate is self-signed and is not a known CA")
        parent = next((c for c in chain if c is not cur and _issues(cur, c)), None)
        if parent is None:
            held = "the PFX holds no CA certificates" if not chain else "the PFX does not hold it"
            return Finding(
                CertStatus.CHAIN_INCOMPLETE,
                f"issuer {cur.issuer!r} of {cur.subject!r} is not a known CA and {held}; export the PFX "
                "with the whole certification path, or add the CA with `orchestrate certs ca add`",
            )
        expired = check_validity(parent, now, 0, what=f"CA certificate {parent.subject!r}")
        if expired is not None and expired.status in (CertStatus.EXPIRED, CertStatus.NOT_YET_VALID):
            return expired
        cur = parent
    return Finding(CertStatus.CHAIN_INCOMPLETE, f"the chain is longer than {_MAX_CHAIN} certificates")


def check_client_cert(
    cert_facts: ClientCertFacts | None,
    expected_hostname: str,
    known_cas: Sequence[CertFacts],
    now: datetime,
    warn_days: int,
    names: MacNames | None = None,
    rule: str = DEFAULT_NAME_RULE,
) -> CertVerdict:
    """Judge a device's client certificate. Pure; never raises for well-formed facts.

    The verdict's status is the most important problem found (CertStatus order), its reason says what to
    do; every problem is listed in findings. With the Mac's live `names`, the name is judged against them
    under `rule` (tasks/hostnames: the Sharing-pane name and/or `hostname`) instead of expected_hostname.
    """
    if names is not None:
        expected_hostname = names.preferred(rule)
    if cert_facts is None:
        return CertVerdict(
            CertStatus.NO_CERTIFICATE,
            f"no client certificate is stored for this device; add a PFX for {expected_hostname!r} "
            "with `orchestrate certs add`",
            expected_hostname,
            (Finding(CertStatus.NO_CERTIFICATE, "no client certificate"),),
        )
    cert = cert_facts.cert
    match = match_names(cert_names(cert), names, rule) if names is not None else None
    if match is not None and match.name is not None:
        expected_hostname = match.name
    found: list[Finding] = []
    if not cert_facts.has_private_key:
        found.append(
            Finding(CertStatus.NO_PRIVATE_KEY, "the PFX holds no private key; export it with the key")
        )
    elif not cert_facts.key_matches:
        found.append(
            Finding(
                CertStatus.NO_PRIVATE_KEY, "the private key in the PFX does not belong to the certificate"
            )
        )
    for f in (
        check_name(cert, expected_hostname) if match is None else check_live_names(match),
        check_validity(cert, now, warn_days),
        check_usage(cert),
        check_chain(cert, cert_facts.chain, known_cas, now),
    ):
        if f is not None:
            found.append(f)
    if not found:
        ok = f"valid until {_day(cert.not_after)}"
        if match is not None and match.names.two_names:
            ok += f"; {match.describe()}"  # the Mac has two names: say which one this certificate carries
        return CertVerdict(CertStatus.OK, ok, expected_hostname, (), match)
    found.sort(key=lambda f: _PRECEDENCE[f.status])
    return CertVerdict(found[0].status, found[0].reason, expected_hostname, tuple(found), match)
