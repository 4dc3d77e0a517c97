"""install.sh, uninstall.sh, 1E.Client.updateconf.sh, the 1E.Client binary, and softwareupdate."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from macsim.client1e import paths, receipts
from macsim.client1e.conf import parse_conf
from macsim.client1e.dmg import build_dmg
from macsim.client1e.hdiutil import hdiutil
from macsim.client1e.pkg import build_pkg
from macsim.client1e.rosetta import softwareupdate
from macsim.client1e.scripts import client_binary, install_sh, uninstall_sh, updateconf_sh
from macsim.client1e.tools import SCRIPTS, TOOLS
from macsim.mac import VirtualMac
from tasks.facts import MacFacts
from tasks.install import InstallParams, steps
from tasks.install.steps import RUN_IN_STAGE_SCRIPT
from tests.macsim.shell_fixtures import Result as ShellResult
from tests.macsim.shell_fixtures import run as shell_run
from tests.macsim.test_client1e_support import make_mac, run

FIXTURES = Path(__file__).parents[1] / "tasks" / "fixtures"

WORK = "/private/tmp/1e"
SW, BG = "tachyon.acme.local:4000", "https://tachyon.acme.local/Background"


def _stage(mac: VirtualMac, version: str) -> str:
    """Copy install.sh beside the pkg, as the 1E guide says; returns the script path."""
    mac.fs.makedirs(WORK)
    mac.fs.write_bytes(f"{WORK}/{paths.pkg_name(version)}", build_pkg(version))
    mac.fs.write_bytes(f"{WORK}/install.sh", b"#!/bin/bash\n#!macsim-script install.sh\n", mode=0o755)
    return f"{WORK}/install.sh"


@pytest.fixture
def mac(tmp_path: Path) -> VirtualMac:
    return make_mac(tmp_path)


def test_registries() -> None:
    assert set(TOOLS) == {"hdiutil", "installer", "pkgutil", "launchctl", "lsof", "softwareupdate"}
    assert set(SCRIPTS) == {"install.sh", "uninstall.sh", "1E.Client.updateconf.sh", "1E.Client"}


async def test_install_sh_fresh_installs_configures_and_starts(mac: VirtualMac) -> None:
    script = _stage(mac, "8.0.1.23")
    r = await run(install_sh, mac, [script, SW, BG])
    assert r.rc == 0, r.err
    assert "installer: The install was successful." in r.out
    conf = parse_conf(mac.fs.read_text(paths.CONF))
    assert (conf["Switch"], conf["BackgroundChannelUrl"], conf["LoggingLevel"]) == (SW, BG, "Normal")
    job = mac.state.launchd[paths.LABEL]
    assert job["pid"] is not None and job["verdict"]["reason"] == "no-identity"  # no certificate yet


async def test_install_sh_upgrade_without_parameters_keeps_conf(mac: VirtualMac) -> None:
    await run(install_sh, mac, [_stage(mac, "8.0.1.23"), SW, BG])
    mac.fs.write_text(
        paths.CONF, mac.fs.read_text(paths.CONF).replace("LoggingLevel=Normal", "LoggingLevel=Debug")
    )
    mac.fs.real(f"{WORK}/{paths.pkg_name('8.0.1.23')}").unlink()
    r = await run(install_sh, mac, [_stage(mac, "8.0.2.5")])
    assert r.rc == 0, r.err
    assert "installer: Upgrading at base path /" in r.out
    conf = parse_conf(mac.fs.read_text(paths.CONF))
    assert (conf["Switch"], conf["BackgroundChannelUrl"], conf["LoggingLevel"]) == (SW, BG, "Debug")
    rec = receipts.read_receipt(mac.fs, paths.PKG_ID)
    assert rec is not None and rec.version == "8.0.2.5"
    assert mac.state.launchd[paths.LABEL]["pid"] is not None


async def test_install_sh_refusals(mac: VirtualMac) -> None:
    script = _stage(mac, "8.0.1.23")
    r = await run(install_sh, mac, [script])
    assert r.rc == 1 and "no existing configuration to upgrade" in r.err and "Usage: install.sh" in r.err
    r = await run(install_sh, mac, [script, SW])
    assert r.rc == 1 and r.err.startswith("Usage: install.sh")
    r = await run(install_sh, mac, [script, "tachyon.acme.local", BG])
    assert r.rc == 1 and "invalid Switch 'tachyon.acme.local'" in r.err
    r = await run(install_sh, mac, [script, SW, BG], uid=501)
    assert r.rc == 1 and "must be run as root" in r.err
    assert not mac.fs.exists(paths.BINARY)


async def test_install_sh_from_the_dmg_scripts_folder_fails(mac: VirtualMac) -> None:
    mac.fs.write_bytes("/private/tmp/c.dmg", build_dmg("8.0.1.23"))
    await run(hdiutil, mac, ["hdiutil", "attach", "/private/tmp/c.dmg"])
    vol = "/Volumes/image.1e.client-macOS_v8.0.1.23"
    r = await run(install_sh, mac, [f"{vol}/scripts/install.sh", SW, BG])
    assert r.rc == 1
    assert f"no 1e.client-macOS_v*.pkg found in {vol}/scripts" in r.err
    assert "copy install.sh into the same directory as the package" in r.err


async def test_uninstall_sh_removes_everything_it_installed(mac: VirtualMac) -> None:
    await run(install_sh, mac, [_stage(mac, "8.0.1.23"), SW, BG])
    r = await run(uninstall_sh, mac, ["./uninstall.sh"], uid=501)
    assert r.rc == 1 and "must be run as root" in r.err
    r = await run(uninstall_sh, mac, ["./uninstall.sh"])
    assert r.rc == 0 and "Forgot package 'com.1e.pkg.1E.Client' on '/'." in r.out
    assert mac.state.launchd == {}
    for path in (paths.BINARY, paths.CONF, paths.PLIST, paths.CLIENT_DIR, "/Library/Application Support/1E"):
        assert not mac.fs.exists(path), path
    assert mac.fs.exists("/Library/Application Support") and mac.fs.exists("/Library/LaunchDaemons")
    assert receipts.read_receipt(mac.fs, paths.PKG_ID) is None
    again = await run(uninstall_sh, mac, ["./uninstall.sh"])
    assert again.rc == 0 and "not installed" in again.out


async def test_updateconf_maps_properties(mac: VirtualMac) -> None:
    await run(install_sh, mac, [_stage(mac, "8.0.1.23"), SW, BG])
    argv = [
        "/Library/Application Support/1E/Client/1E.Client.updateconf.sh",
        paths.CONF,
        "SWITCH=a.lab:4000;b.lab:4000",
        "BACKGROUNDCHANNELURL=https://a.lab/Bg/;https://b.lab/Bg/",
        "loggingLevel=debug",
    ]
    r = await run(updateconf_sh, mac, argv)
    assert r.rc == 0, r.err
    conf = parse_conf(mac.fs.read_text(paths.CONF))
    assert conf["Switch"] == "a.lab:4000;b.lab:4000" and conf["LoggingLevel"] == "Debug"
    assert conf["BackgroundChannelUrl"] == "https://a.lab/Bg/;https://b.lab/Bg/"
    before = mac.fs.read_text(paths.CONF)
    r = await run(updateconf_sh, mac, [argv[0], paths.CONF, "SWITCH=x:1", "FROBNICATE=1"])
    assert (r.rc, r.err) == (1, "1E.Client.updateconf.sh: unknown property 'FROBNICATE'\n")
    assert mac.fs.read_text(paths.CONF) == before  # nothing written when one property is bad
    r = await run(updateconf_sh, mac, [argv[0], paths.CONF, "SWITCH=x:1"], uid=501)
    assert r.rc == 1 and "Permission denied" in r.err and mac.fs.read_text(paths.CONF) == before
    r = await run(updateconf_sh, mac, [argv[0], paths.CONF])
    assert r.rc == 1 and r.err.startswith("Usage: 1E.Client.updateconf.sh")


async def test_client_binary_version_and_bad_cpu(tmp_path: Path) -> None:
    intel = make_mac(tmp_path / "i")
    await run(install_sh, intel, [_stage(intel, "8.0.1.23"), SW, BG])
    r = await run(client_binary, intel, [paths.BINARY, "--version"])
    assert (r.rc, r.out) == (0, "1E Client v8.0.1.23\n")
    arm = make_mac(tmp_path / "a", arch="arm64")
    await run(install_sh, arm, [_stage(arm, "8.0.1.23"), SW, BG])
    r = await run(client_binary, arm, [paths.BINARY, "-v"])
    assert (r.rc, r.err) == (126, f"zsh: bad CPU type in executable: {paths.BINARY}\n")
    assert "Bad CPU type in executable" in arm.fs.read_text(paths.DAEMON_LOG)


async def test_softwareupdate_rosetta_on_each_arch(tmp_path: Path) -> None:
    arm = make_mac(tmp_path / "a", arch="arm64")
    r = await run(softwareupdate, arm, ["softwareupdate", "--install-rosetta"])
    assert r.rc == 1 and r.out.startswith(
        "I have read and agree to the terms of the software license agreement."
    )
    assert "Type A and press return to agree: " in r.out and not arm.state.rosetta
    r = await run(softwareupdate, arm, ["softwareupdate", "--install-rosetta", "--agree-to-license"], uid=501)
    assert r.rc == 1 and "root" in r.err and not arm.state.rosetta
    r = await run(softwareupdate, arm, ["softwareupdate", "--install-rosetta", "--agree-to-license"])
    assert r.rc == 0 and r.out.endswith("Install of Rosetta 2 finished successfully\n") and arm.state.rosetta
    arm2 = make_mac(tmp_path / "b", arch="arm64")
    r = await run(softwareupdate, arm2, ["softwareupdate", "--install-rosetta"], stdin=b"A\n", uid=501)
    assert r.rc == 0 and arm2.state.rosetta
    intel = make_mac(tmp_path / "i")
    r = await run(softwareupdate, intel, ["softwareupdate", "--install-rosetta", "--agree-to-license"])
    assert r.rc == 1 and r.err.startswith("softwareupdate: unrecognized option `--install-rosetta'\n")
    assert "usage: softwareupdate <cmd> [<args> ...]" in r.err and not intel.state.rosetta
    r = await run(softwareupdate, arm, ["softwareupdate", "-l"])
    assert r.rc == 1 and "usage: softwareupdate" in r.err


async def test_updateconf_run_with_sh_as_the_guide_types_it(mac: VirtualMac) -> None:
    """`sudo sh '.../1E.Client.updateconf.sh' CONF SWITCH=...`: `sh FILE` runs the emulated script."""
    from tests.macsim.shell_fixtures import run as shell_run

    await run(install_sh, mac, [_stage(mac, "8.0.1.23"), SW, BG])
    r = await shell_run(mac, "sudo sh '/Library/Application Support/1E/Client/1E.Client.updateconf.sh' "
                             f"'{paths.CONF}' SWITCH='a.lab:4000;b.lab:4000' BACKGROUNDCHANNELURL='https://a.lab/B/'")
    assert r.status == 0, r.err
    conf = parse_conf(mac.fs.read_text(paths.CONF))
    assert (conf["Switch"], conf["BackgroundChannelUrl"]) == ("a.lab:4000;b.lab:4000", "https://a.lab/B/")
    bad = await shell_run(mac, f"sudo sh '{paths.UPDATECONF}' '{paths.CONF}' FROBNICATE=1")
    assert (bad.status, bad.err) == (1, "1E.Client.updateconf.sh: unknown property 'FROBNICATE'\n")


# The install step's own staging commands (tasks/install/steps.py), run as the runner sends them (sudo -n,
# shlex.join) by the macsim shell: a copy from the mounted image, then `./install.sh` in the stage.
async def _sh(mac: VirtualMac, *argv: str) -> ShellResult:
    return await shell_run(mac, shlex.join(("sudo", "-n", *argv)))


async def test_staged_install_sh_runs_from_a_copy_beside_the_pkg(mac: VirtualMac) -> None:
    # the planners' own commands for a fresh Mac (the golden fixture's facts and params)
    data = json.loads((FIXTURES / "install" / "install" / "fresh-intel.json").read_text())
    facts, params = MacFacts.from_json(data["facts"]), InstallParams.from_json(data["params"])
    mac.fs.makedirs(params.private_dir, mode=0o700)
    mac.fs.write_bytes(params.dmg_path, build_dmg(params.version))
    plan = [*steps.mount(facts, params).commands, *steps.install(facts, params).commands]
    for cmd in plan:
        r = await _sh(mac, *cmd.argv)
        assert r.status == 0, (cmd.argv, r.err)
    stage = params.stage_dir
    for name in ("install.sh", params.dmg.pkg_name):  # real files, not links into the image
        real = mac.fs.real(stage) / name  # the entry itself (fs.real would follow a link)
        assert real.is_file() and not real.is_symlink(), name
    assert mac.fs.real(f"{stage}/install.sh").stat().st_mode & 0o777 == 0o755  # cp -p kept the exec bit
    assert mac.fs.real(stage).stat().st_mode & 0o777 == 0o700
    assert "Installing 1e.client-macOS_v8.0.2.5.pkg" in r.out  # the last command: ./install.sh
    assert parse_conf(mac.fs.read_text(paths.CONF))["Switch"] == params.switch


async def test_staged_install_sh_needs_its_exec_bit_and_the_pkg_beside_it(mac: VirtualMac) -> None:
    stage = "/private/tmp/mf/stage"
    mac.fs.makedirs(stage)
    script = b"#!/bin/bash\n#!macsim-script install.sh\n"
    mac.fs.write_bytes(f"{stage}/install.sh", script, mode=0o644)  # a copy that lost its exec bit
    mac.fs.write_bytes(f"{stage}/{paths.pkg_name('8.0.2.5')}", build_pkg("8.0.2.5"))
    r = await _sh(mac, "/bin/sh", "-c", RUN_IN_STAGE_SCRIPT, "install", stage, SW, BG)
    # sh (bash) and zsh both refuse a non-executable ./FILE with exit 126 "permission denied"
    assert r.status == 126 and "Permission denied" in r.err, r
    assert not mac.fs.exists(paths.BINARY)
    mac.fs.real(f"{stage}/{paths.pkg_name('8.0.2.5')}").unlink()
    mac.fs.write_bytes(f"{stage}/install.sh", script, mode=0o755)
    r = await _sh(mac, "/bin/sh", "-c", RUN_IN_STAGE_SCRIPT, "install", stage, SW, BG)
    assert r.status == 1 and f"no 1e.client-macOS_v*.pkg found in {stage}" in r.err, r
    assert not mac.fs.exists(paths.BINARY)
