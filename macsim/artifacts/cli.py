"""`python -m macsim artifacts OUT --versions V... --hosts fleet.yaml`: the files tests and the demo need.

Writes, into OUT: one fake 1E Client DMG per version (`macsim.artifacts.dmg.write_dmg`) and the certificate
artifacts for the spec's hosts (`macsim.artifacts.certs.write_cert_artifacts`: lab and Switch CAs, one PFX
per host named for what `hostname` prints there, the bad PFX files, a 0600 passwords file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from macsim.artifacts.certs import write_cert_artifacts
from macsim.artifacts.dmg import write_dmg
from macsim.spec import load_spec

_VERSION = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


class ArtifactsError(ValueError):
    """Bad arguments for the artifacts command; the message names the argument."""


@dataclass
class ArtifactsReport:
    out: Path
    dmgs: list[Path] = field(default_factory=list)
    cert_manifest: Path | None = None
    hosts: dict[str, str] = field(default_factory=dict)


def check_versions(versions: list[str]) -> None:
    """Raises ArtifactsError naming the first version that is not like 8.0.2.5."""
    if not versions:
        raise ArtifactsError("--versions: at least one client version is needed")
    for v in versions:
        if not _VERSION.match(v):
            raise ArtifactsError(f"--versions: not a 1E Client version like 8.0.2.5: {v!r}")


def write_artifacts(out: Path, versions: list[str], hosts_spec: Path) -> ArtifactsReport:
    """Write the DMGs and certificate artifacts for the hosts of `hosts_spec` into `out`.

    Raises SpecError for a bad spec, ArtifactsError for bad versions, OSError when OUT cannot be written.
    """
    check_versions(versions)
    spec = load_spec(hosts_spec)
    out.mkdir(parents=True, exist_ok=True)
    report = ArtifactsReport(out=out, hosts={h.name: h.hostname for h in spec.hosts})
    for v in versions:
        report.dmgs.append(Path(write_dmg(out, v)))
    report.cert_manifest = write_cert_artifacts(out, report.hosts).manifest
    return report
