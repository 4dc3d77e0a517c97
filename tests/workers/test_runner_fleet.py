"""A mixed fleet of 20 Macs through the local driver: Intel and Apple silicon (with and without Rosetta) on two
macOS versions all end connected, while four deliberately broken ones each fail at the right step with the
right typed reason, and nothing of theirs touches the others. A second run changes nothing on a finished Mac:
asserted from macsim's command log and from the runner's own count."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.workers.lab import VERSION, assert_awaiting_trust, assert_failed_at, lab, mac_files
from workers.local import drive

SSH: dict[str, Any] = {
    "connect_timeout": 5.0,  # 20 handshakes at once in one process, on a busy 2-core machine
    "command_timeout": 10.0,
    "keepalive_interval": 2.0,
    "keepalive_count_max": 2,
}
MACOS = [("13.6.9", "22G830"), ("14.6.1", "23G93")]
KINDS: list[dict[str, Any]] = [
    {"arch": "x86_64"},
    {"arch": "arm64", "rosetta": True},
    {"arch": "arm64", "rosetta": False},
]
GOOD = [
    {"name": f"mac-{i:02d}", **KINDS[i % 3], "macos_version": MACOS[i % 2][0], "macos_build": MACOS[i % 2][1]}
    for i in range(16)
]
BROKEN: dict[str, tuple[dict[str, Any], str, str]] = {  # name -> (spec, failed step, error type)
    "mac-wrongcase": ({"arch": "arm64", "rosetta": False}, "preflight", "HostnameMismatch"),
    "mac-nospace": ({"free_space_mb": 1}, "preflight", "InsufficientSpace"),
    "mac-offline": ({"faults": {"refuse_connections": True}}, "connect", "Unreachable"),
}
NOTRUST = "mac-notrust"  # installed, awaiting its CA trust (refused over SSH)
HOSTS = GOOD + [{"name": name, **spec} for name, (spec, _, _) in BROKEN.items()] + [
    {"name": NOTRUST, "faults": {"trust_refused": True}}]
CLIENT = "/Library/Application Support/1E/Client/1E.Client"

# what changes a Mac, as it appears in an exec's text (whole words: `rm` but not `__macfleet_rc`)
MUTATING = [
    r"add-trusted-cert", r"hdiutil attach", r"installer", r"install\.sh", r"security -i", r"delete-identity",
    r"launchctl (?:kickstart|load|bootstrap)", r"softwareupdate", r"rm", r"mv", r"cp", r"mkdir",
]
MUTATING_RE = re.compile(r"(?<![\w.-])(?:" + "|".join(MUTATING) + r")(?![\w.-])")


def test_the_mutating_pattern_sees_what_an_install_runs_and_not_the_probes() -> None:
    assert MUTATING_RE.search("sh -c 'rm -rf /private/tmp/macfleet-1 </dev/null\n__macfleet_rc=$?'")
    assert MUTATING_RE.search("/bin/sh /private/tmp/x/stage/install.sh tachyon:4000 https://t/B/")
    assert MUTATING_RE.search("launchctl kickstart -k system/com.1e.pkg.1E.Client")
    assert not MUTATING_RE.search("launchctl print system/com.1e.pkg.1E.Client; printf '%s' \"$__macfleet_rc\"")
    assert not MUTATING_RE.search("security find-identity /Library/Keychains/System.keychain; pkgutil --pkg-info")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: test_runner_install
async def test_mixed_fleet_of_20_then_a_rerun_changes_nothing(tmp_path: Path, engine: Engine) -> None:
    async with lab(tmp_path, engine, HOSTS, ssh=SSH, pfx_for={"mac-wrongcase": "wrong-case"}) as L:
        run = L.create_run()
        outcome = await drive(L.engine, L.settings, run, concurrency=20)
        assert outcome.status == "failed"
        assert outcome.counts == {"succeeded": 16, "failed": 3, "awaiting_trust": 1}, outcome.failed
        assert sorted(name for name, *_ in outcome.failed) == sorted(BROKEN)

        for h in GOOD:
            name = h["name"]
            steps = L.steps(run, name)
            assert steps["verify"].status == "ok", (name, steps["verify"].output_tail)
            bare = h["arch"] == "arm64" and not h["rosetta"]
            assert steps["rosetta"].status == ("changed" if bare else "noop"), name
            dev = L.device(name)
            assert (dev.connected, dev.installed_version, dev.last_outcome, dev.last_error) == (
                True, VERSION, "succeeded", None), name
            assert dev.macos_version == h["macos_version"] and dev.arch == h["arch"], name
            assert not [f for f in mac_files(L, name) if f.endswith(".p12") or "/macfleet-" in f], name

        for name, (_, step, error_type) in BROKEN.items():
            msg = assert_failed_at(L, run, name, step, error_type)
            mac = L.fleet.hosts[name].mac
            assert not mac.fs.exists(CLIENT), name  # nothing installed
            assert L.device(name).installed_version is None, name
            if name == "mac-wrongcase":
                assert "case" in msg
            if name == "mac-offline":
                assert L.commands(name) == [] and list(L.steps(run, name)) == ["connect"]
            else:
                assert L.steps(run, name)["verify"].status == "skipped", name

        assert_awaiting_trust(L, run, NOTRUST, "TrustInteractionNotAllowed")
        assert L.fleet.hosts[NOTRUST].mac.fs.exists(CLIENT)

        marks = L.marks()
        again = L.create_run()
        second = await drive(L.engine, L.settings, again, concurrency=20)
        assert second.counts == {"succeeded": 16, "failed": 3, "awaiting_trust": 1}, second.failed
        by_name = {r.name: r for r in second.results}
        for h in GOOD:
            name = h["name"]
            assert by_name[name].mutating_commands == 0, name
            texts = L.commands(name, since=marks[name])
            assert texts, name  # it was asked: facts and verify ran
            touched = [m.group(0) for t in texts for m in MUTATING_RE.finditer(t)]
            assert touched == [], (name, touched)
            statuses = {n: s.status for n, s in L.steps(again, name).items()}
            assert {s for n, s in statuses.items() if n not in ("connect", "facts", "verify")} == {"noop"}, (
                name, statuses)
            assert statuses["verify"] == "ok"
        for name, (_, step, error_type) in BROKEN.items():
            assert_failed_at(L, again, name, step, error_type)
        assert_awaiting_trust(L, again, NOTRUST, "TrustInteractionNotAllowed")
