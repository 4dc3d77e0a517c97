"""The install workflow's parameters: what to install, with which identity and CAs, and where."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from tasks.hostnames import DEFAULT_NAME_RULE, check_rule
from tasks.refs import CaRef as CaRef  # re-exported: the install workflow's importers find them here
from tasks.refs import DmgRef as DmgRef
from tasks.refs import IdentityRef as IdentityRef

CACHE_DIR = "/Library/Caches/macfleet"  # where `cache_dmg` keeps DMGs between runs
METHODS = ("install.sh", "pkg")
# How root CAs get trusted: "ssh" tries `add-trusted-cert` over SSH and, refused, leaves the device awaiting
# an MDM profile; "profile" never tries (the profile from `orchestrate certs profile` is expected); "skip"
# neither touches nor judges CA trust.
TRUST_MODES = ("ssh", "profile", "skip")


@dataclass(frozen=True)
class InstallParams:
    run_id: str
    version: str
    switch: str
    background_url: str
    dmg: DmgRef
    identity: IdentityRef
    cas: tuple[CaRef, ...]
    private_dir: str
    cache_dir: str | None = None
    method: str = "install.sh"
    expected_team_id: str | None = None
    min_free_bytes: int = 0  # an extra floor on top of decide()'s own rule (which counts the DMG once); 0
    allow_all_apps: bool = False  # upgrade opt-in: import the identity with -A (any app) instead of -T
    name_rule: str = DEFAULT_NAME_RULE  # which of the Mac's names the certificate carries (tasks/hostnames)
    trust_mode: str = "ssh"  # one of TRUST_MODES

    def __post_init__(self) -> None:
        check_rule(self.name_rule)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.trust_mode not in TRUST_MODES:
            raise ValueError(f"trust_mode must be one of {TRUST_MODES}, got {self.trust_mode!r}")
        if not self.private_dir.startswith("/") or self.private_dir.rstrip("/") in (
            "",
            "/private/tmp",
            "/tmp",
        ):
            raise ValueError(f"private_dir must be a per-run absolute directory, got {self.private_dir!r}")

    @property
    def mount_point(self) -> str:
        return f"{self.private_dir}/mnt"

    @property
    def stage_dir(self) -> str:
        """Where install.sh and the pkg are copied together (install.sh finds the pkg beside itself)."""
        return f"{self.private_dir}/stage"

    @property
    def pkginfo_dir(self) -> str:
        """Scratch directory the version check expands the image's pkg into (removed right after)."""
        return f"{self.private_dir}/pkginfo"

    @property
    def saved_conf_path(self) -> str:
        """Where the pkg method keeps the conf across `installer` (the plain pkg resets it)."""
        return f"{self.stage_dir}/1E.Client.conf.saved"

    @property
    def pfx_path(self) -> str:
        return f"{self.private_dir}/client.p12"

    @property
    def pushed_dmg_path(self) -> str:
        return f"{self.private_dir}/{self.dmg.file_name}"

    @property
    def cache_path(self) -> str | None:
        return f"{self.cache_dir.rstrip('/')}/{self.dmg.sha256}.dmg" if self.cache_dir else None

    @property
    def dmg_path(self) -> str:
        """The DMG the mount uses when it is NOT already in the cache: the pushed copy in the private dir.
        (Whether the cache holds it is a fact: planners use `dmg_path_for(facts.dmg_cached)`.)"""
        return self.pushed_dmg_path

    def dmg_path_for(self, cached: bool) -> str:
        return self.cache_path if cached and self.cache_path else self.pushed_dmg_path

    def ca_path(self, ca: CaRef) -> str:
        return f"{self.private_dir}/{ca.pem_name}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "dmg":
                v = {x.name: getattr(v, x.name) for x in fields(DmgRef)}
            elif f.name == "identity":
                v = {"sha1": v.sha1, "sha256": v.sha256, "names": list(v.names)}
            elif f.name == "cas":
                v = [{x.name: getattr(c, x.name) for x in fields(CaRef)} for c in v]
            out[f.name] = v
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InstallParams:
        known = {f.name for f in fields(cls)}
        extra = set(data) - known
        if extra:
            raise ValueError(f"InstallParams: unknown {sorted(extra)}")
        d = dict(data)
        d["dmg"] = DmgRef(**d["dmg"])
        ident = d["identity"]
        d["identity"] = IdentityRef(ident["sha1"], ident["sha256"], tuple(ident["names"]))
        d["cas"] = tuple(CaRef(**c) for c in d["cas"])
        return cls(**d)


def rollback_params(params: InstallParams, previous: DmgRef) -> InstallParams:
    """The same rollout aimed at the previous version: its DMG, its version (the install step replaces the
    newer package, the identity step re-grants key access to the older binary)."""
    if previous.version == params.version:
        raise ValueError(f"rollback to {previous.version}: that is the version being rolled back")
    return replace(params, version=previous.version, dmg=previous)
