"""The DMG registry: our own UDIF trailer checks over macsim's images, and `orchestrate artifact ...`."""

from __future__ import annotations

import json
import stat
import struct
from pathlib import Path

import pytest
from sqlmodel import Session, select

from macsim.artifacts.dmg import write_corrupt_dmg, write_dmg, write_truncated_dmg
from orchestrator import artifacts
from orchestrator.cli import context
from orchestrator.state.models import AuditEvent, Run, RunStatus
from tests.orchestrator.certs.test_certs_cli import _setup, run

V1, V2 = "8.1.2.62", "8.4.0.127"


@pytest.fixture(scope="module")
def dmgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dmg")
    return {
        "v1": write_dmg(d, V1),
        "v2": write_dmg(d, V2),
        "corrupt": write_corrupt_dmg(d, V1),
        "truncated": write_truncated_dmg(d, V1),
    }


def _mutated(src: Path, dst: Path, offset_from_end: int, value: bytes) -> Path:
    data = bytearray(src.read_bytes())
    pos = len(data) - 512 + offset_from_end
    data[pos : pos + len(value)] = value
    dst.write_bytes(bytes(data))
    return dst


def test_validate_good_image(dmgs: dict[str, Path]) -> None:
    info = artifacts.validate_dmg(dmgs["v1"])
    assert info.trailer.version == 4 and info.trailer.data_checksum_type == 2
    assert info.size == dmgs["v1"].stat().st_size and len(info.sha256) == 64


def test_corrupt_image_is_refused(dmgs: dict[str, Path]) -> None:
    with pytest.raises(artifacts.DmgFormatError, match=r"data fork CRC32 is .* but the trailer records"):
        artifacts.validate_dmg(dmgs["corrupt"])


def test_truncated_image_is_refused(dmgs: dict[str, Path]) -> None:
    with pytest.raises(artifacts.DmgFormatError, match="no UDIF 'koly' trailer"):
        artifacts.validate_dmg(dmgs["truncated"])


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (4, struct.pack(">I", 3), "trailer version 3 / header size 512"),
        (8, struct.pack(">I", 256), "version 4 / header size 256"),
        (32, struct.pack(">Q", 1 << 40), "data fork .* lies outside the file"),
        (224, struct.pack(">Q", 1 << 30), "XML plist .* lies outside the file"),
    ],
)
def test_trailer_fields_are_checked(
    dmgs: dict[str, Path], tmp_path: Path, offset: int, value: bytes, message: str
) -> None:
    bad = _mutated(dmgs["v1"], tmp_path / "x.dmg", offset, value)
    with pytest.raises(artifacts.DmgFormatError, match=message):
        artifacts.validate_dmg(bad)


def test_tiny_and_garbage_files(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.dmg"
    tiny.write_bytes(b"koly")
    with pytest.raises(artifacts.DmgFormatError, match="too short"):
        artifacts.validate_dmg(tiny)
    junk = tmp_path / "junk.dmg"
    junk.write_bytes(b"\0" * 4096)
    with pytest.raises(artifacts.DmgFormatError, match="no UDIF 'koly' trailer"):
        artifacts.validate_dmg(junk)


def test_version_from_filename() -> None:
    assert artifacts.version_from_filename("1e.client-macOS_v8.0.1.23.dmg") == "8.0.1.23"
    assert artifacts.version_from_filename("1e.client-macOS_v8.0.x.x.dmg") is None
    assert artifacts.version_from_filename("client.dmg") is None


@pytest.fixture
def cli(orchestrate_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _setup(orchestrate_env, tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'a.db'}")
    return orchestrate_env


def test_add_list_remove(cli: Path, dmgs: dict[str, Path]) -> None:
    r = run("artifact", "add", str(dmgs["v2"]), "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["version"] == V2 and row["created"]
    stored = Path(row["path"])
    assert stored == cli / "artifacts" / "sha256" / row["sha256"][:2] / f"{row['sha256']}.dmg"
    assert stored.read_bytes() == dmgs["v2"].read_bytes()
    assert not stat.S_IMODE(stored.stat().st_mode) & 0o222  # read-only
    # again: nothing new
    r = run("artifact", "add", str(dmgs["v2"]), "--json")
    assert r.exit_code == 0 and not json.loads(r.stdout)["created"]
    # the version from the flag, for a file named otherwise
    renamed = cli.parent / "client.dmg"
    renamed.write_bytes(dmgs["v1"].read_bytes())
    r = run("artifact", "add", str(renamed))
    assert r.exit_code == 2 and "give --version" in r.output
    r = run("artifact", "add", str(renamed), "--version", V1)
    assert r.exit_code == 0, r.output
    r = run("artifact", "list", "--json")
    assert [a["version"] for a in json.loads(r.stdout)] == [V1, V2]
    r = run("artifact", "remove", V1, "--yes")
    assert r.exit_code == 0, r.output
    assert [a["version"] for a in json.loads(run("artifact", "list", "--json").stdout)] == [V2]
    with Session(context.engine()) as s:
        events = [(e.action, e.outcome) for e in s.exec(select(AuditEvent)).all()]
    assert events.count(("artifact.add", "ok")) == 3 and ("artifact.add", "error") in events
    assert ("artifact.remove", "ok") in events


def test_add_refuses_corrupt_and_truncated(cli: Path, dmgs: dict[str, Path]) -> None:
    r = run("artifact", "add", str(dmgs["corrupt"]), "--version", V1)
    assert r.exit_code == 2 and "data fork CRC32" in r.output
    r = run("artifact", "add", str(dmgs["truncated"]), "--version", V1)
    assert r.exit_code == 2 and "koly" in r.output
    assert json.loads(run("artifact", "list", "--json").stdout) == []
    assert not (cli / "artifacts").exists() or not any((cli / "artifacts").rglob("*.dmg"))


def test_version_clash_is_refused(cli: Path, dmgs: dict[str, Path]) -> None:
    assert run("artifact", "add", str(dmgs["v1"])).exit_code == 0
    r = run("artifact", "add", str(dmgs["v2"]), "--version", V1)
    assert r.exit_code == 1 and f"version {V1} is already stored with another image" in r.output


def test_remove_refuses_an_artifact_in_use(cli: Path, dmgs: dict[str, Path]) -> None:
    row = json.loads(run("artifact", "add", str(dmgs["v1"]), "--json").stdout)
    with Session(context.engine()) as s:
        s.add(
            Run(kind="install", status=RunStatus.RUNNING, params_json=json.dumps({"artifact_id": row["id"]}))
        )
        s.commit()
    r = run("artifact", "remove", row["sha256"][:12], "--yes")
    assert r.exit_code == 1 and "used by active run(s)" in r.output
    assert Path(row["path"]).exists()
    r = run("artifact", "remove", "9.9.9.9", "--yes")
    assert r.exit_code == 2 and "no artifact match '9.9.9.9'" in r.output


def test_remove_asks_for_confirmation(cli: Path, dmgs: dict[str, Path]) -> None:
    run("artifact", "add", str(dmgs["v1"]))
    r = run("artifact", "remove", V1, input="n\n")
    assert r.exit_code == 1 and "nothing removed" in r.output
    assert len(json.loads(run("artifact", "list", "--json").stdout)) == 1
