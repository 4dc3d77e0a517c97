"""The image's content decides its version (issue 14): on the Mac, after the mount and before anything is
installed, the package's own PackageInfo is read; an 8.0.2.5 image presented as 8.0.1.23 is refused with both
versions named, nothing installed, and the image unmounted and the private directory removed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from macsim.artifacts.dmg import write_misnamed_dmg
from macsim.client1e import paths
from orchestrator.artifacts import store_path
from orchestrator.state.models import Artifact
from tests.workers.lab import VERSION, assert_failed_at, lab, mac_files
from workers.local import drive

MAC = "mac-1"
PRESENTED = "8.0.1.23"


async def test_image_whose_package_is_another_version_is_refused_before_installing(
    tmp_path: Path, engine: Engine
) -> None:
    async with lab(tmp_path, engine, [{"name": MAC, "arch": "x86_64"}]) as L:
        # an 8.0.2.5 image renamed ..._v8.0.1.23.dmg (padded: a different SHA-256 from the lab's own image).
        # Registered directly, as an image stored before any controller-side content check would be.
        dmg = write_misnamed_dmg(tmp_path / "renamed", VERSION, PRESENTED, size_bytes=64 * 1024)
        assert dmg.name == f"1e.client-macOS_v{PRESENTED}.dmg"
        sha = hashlib.sha256(dmg.read_bytes()).hexdigest()
        dest = store_path(L.settings.data_dir, sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dmg, dest)
        with Session(L.engine) as s:
            s.add(Artifact(sha256=sha, version=PRESENTED, filename=dmg.name, size=dmg.stat().st_size,
                           path=str(dest)))
            s.commit()

        run = L.create_run(version=PRESENTED, artifact_sha256=sha)
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.status != "succeeded"
        msg = assert_failed_at(L, run, MAC, "install", "PackageVersionMismatch")
        assert f"registered as version {PRESENTED}" in msg and "(version 8.0.2.5)" in msg, msg
        steps = L.steps(run, MAC)
        assert steps["mount"].status == "changed"
        assert steps["unmount"].status == "changed" and steps["cleanup"].status == "changed"
        assert all(steps[s].status == "skipped" for s in ("identity", "start", "verify")), steps
        mac = L.fleet.hosts[MAC].mac
        assert not mac.fs.exists(paths.BINARY) and not mac.fs.exists(paths.CONF)
        assert mac.state.mounts == {}
        assert [f for f in mac_files(L, MAC, "/private/tmp") if "/macfleet-" in f] == []
        assert L.device(MAC).installed_version is None
        round_trips = {r.name: r.round_trips for r in outcome.results}
        assert round_trips[MAC] <= 6, round_trips


async def test_matching_image_installs_from_a_staged_copy_within_six_round_trips(
    tmp_path: Path, engine: Engine
) -> None:
    async with lab(tmp_path, engine, [{"name": MAC, "arch": "x86_64"}]) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run)
        assert outcome.status == "succeeded", outcome.failed
        steps = L.steps(run, MAC)
        assert steps["install"].status == "changed" and "macfleet-pkginfo" in (steps["install"].output_tail or "")
        batch = next(c for c in L.commands(MAC) if "check-package-version" in c)
        # the version check runs before the stage copy and ./install.sh, in the same exec
        assert batch.index("pkgutil --expand") < batch.index("cp -p") < batch.index("exec ./install.sh")
        assert "ln -s" not in batch
        assert L.device(MAC).installed_version == VERSION
        assert [f for f in mac_files(L, MAC, "/private/tmp") if "/macfleet-" in f] == []  # stage removed
        assert outcome.results[0].round_trips <= 6, outcome.results[0].round_trips
