"""The lifecycle workflows' pure pieces: key validation, params round trips, judges, explainers, parse_logs,
rollback_params, the -A import line and the registry."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tasks.install import DmgRef, identity_import_stdin, rollback_params
from tasks.install.verify import judge_connected
from tasks.logs import LogsParams, parse_logs
from tasks.model import ProbeOutput
from tasks.reconfigure import PROPERTIES, ReconfigureParams, explain_updateconf, validate_conf_keys
from tasks.registry import PARAMS, WORKFLOWS
from tasks.service import StartParams, StopParams, explain_launchctl, judge_stopped
from tasks.uninstall import UNINSTALL, UninstallParams, explain_keychain, explain_remove

from .test_install_units import PARAMS as INSTALL_PARAMS
from .verify_support import RUNNING, poll_output


def po(status: int | None, out: str = "", err: str = "") -> ProbeOutput:
    return ProbeOutput(("x",), status, out, err)


def test_validate_conf_keys() -> None:
    got = validate_conf_keys([("switch", "a.b:4000;c.d:4000"), ("LoggingLevel", "debug")])
    assert got == (("SWITCH", "a.b:4000;c.d:4000"), ("LOGGINGLEVEL", "debug"))
    for bad, why in [
        ([("FOO", "1")], "allowed: SWITCH"),
        ([("SWITCH", "no-port")], "host:port"),
        ([("BACKGROUNDCHANNELURL", "ftp://x")], "https://"),
        ([("LOGGINGLEVEL", "loud")], "Debug"),
        ([("SWITCH", "a:1"), ("switch", "b:2")], "twice"),
        ([("LOGFILE", "a\nb")], "line break"),
        ([("MODULE.INVENTORY.ENABLED", "yes")], "true or false"),
        ([], "no conf key"),
    ]:
        with pytest.raises(ValueError, match=why):
            validate_conf_keys(bad)
    with pytest.raises(ValueError, match="allowed"):
        ReconfigureParams("r", (("NOPE", "x"),))
    assert set(PROPERTIES) >= {"SWITCH", "BACKGROUNDCHANNELURL", "LOGGINGLEVEL"}


SAMPLES: dict[str, Any] = {
    "install": INSTALL_PARAMS,
    "upgrade": dataclasses.replace(INSTALL_PARAMS, allow_all_apps=True, method="pkg"),
    "uninstall": UninstallParams(
        "r", "/private/tmp/macfleet-r", DmgRef("1", "ab" * 32, 1, "x.dmg"), True, "AA" * 20, ("BB" * 20,)
    ),
    "reconfigure": ReconfigureParams("r", (("SWITCH", "a:1"),)),
    "start": StartParams("r"),
    "stop": StopParams("r"),
    "restart": PARAMS["restart"]("r"),
    "logs": LogsParams("r", 50, True),
    "check": PARAMS["check"]("r"),
}


@pytest.mark.parametrize("kind", sorted(WORKFLOWS))
def test_params_round_trip(kind: str) -> None:
    import json

    p = SAMPLES[kind]
    assert isinstance(p, PARAMS[kind])
    assert PARAMS[kind].from_json(json.loads(json.dumps(p.as_json()))) == p
    with pytest.raises(ValueError, match="unknown"):
        PARAMS[kind].from_json({**p.as_json(), "bogus": 1})


def test_registry() -> None:
    assert set(WORKFLOWS) == {
        "install",
        "upgrade",
        "uninstall",
        "reconfigure",
        "start",
        "stop",
        "restart",
        "logs",
        "check",
    }
    assert [s.name for s in WORKFLOWS["check"].steps] == ["verify"]  # status --refresh: read-only
    assert WORKFLOWS["upgrade"].steps == WORKFLOWS["install"].steps and WORKFLOWS["upgrade"].name == "upgrade"
    for wf in WORKFLOWS.values():
        assert all(not c.mutating for _, c in wf.fact_commands(SAMPLES[wf.name]))


def test_uninstall_params_checks() -> None:
    with pytest.raises(ValueError, match="SHA-1"):
        UninstallParams("r", "/private/tmp/m", remove_identity=True)
    with pytest.raises(ValueError, match="not a SHA-1"):
        UninstallParams("r", "/private/tmp/m", remove_ca_sha1s=("xyz",))
    with pytest.raises(ValueError, match="per-run"):
        UninstallParams("r", "/tmp")


def test_rollback_params() -> None:
    prev = DmgRef("8.0.1.23", "cd" * 32, 900, "1e.client-macOS_v8.0.1.23.dmg")
    back = rollback_params(INSTALL_PARAMS, prev)
    assert (back.version, back.dmg, back.identity, back.switch) == (
        "8.0.1.23",
        prev,
        INSTALL_PARAMS.identity,
        "s:4000",
    )
    with pytest.raises(ValueError, match="rolled back"):
        rollback_params(INSTALL_PARAMS, INSTALL_PARAMS.dmg)


def test_allow_all_apps_imports_with_A() -> None:
    line = identity_import_stdin(dataclasses.replace(INSTALL_PARAMS, allow_all_apps=True), "pw")
    assert line.endswith(b" -P pw -A\n") and b"-T" not in line


def test_judge_connected_wants_the_new_switch() -> None:
    # the log is read from the restart on: any connected line there is the new conf's
    log = "t INFO 1E Client starting\nt INFO Connected to Switch new.x:4000 as m\n"
    assert judge_connected([poll_output(0, RUNNING, log, switch="new.x:4000")]).done
    # the socket must reach a port of the new Switch (an IP literal Switch: its address too)
    sock = "p42\nf9\nn10.0.0.2:50000->10.0.0.9:4000\n"
    assert judge_connected([poll_output(0, RUNNING, "", sock, switch="new.x:4000")]).done
    assert judge_connected([poll_output(0, RUNNING, "", sock, switch="10.0.0.9:4000")]).done
    assert judge_connected([poll_output(0, RUNNING, "", sock, switch="new.x:4443")]).pending
    assert judge_connected([poll_output(0, RUNNING, "", sock, switch="10.0.0.8:4000")]).pending


def test_judge_stopped() -> None:
    assert judge_stopped(None, StopParams("r"), [po(113, "", "Bad request.")]).done  # type: ignore[arg-type]
    assert judge_stopped(None, StopParams("r"), [po(0, RUNNING)]).pending  # type: ignore[arg-type]


def test_uninstall_judge() -> None:
    p = SAMPLES["uninstall"]
    clean = [
        po(1, "", "No receipt for 'com.1e.pkg.1E.Client' found at '/'."),
        po(1, "", "ls: /x: No such file or directory"),
        po(113, "", "Bad request."),
        po(0, "Policy: X.509 Basic\n  Matching identities\n     0 identities found\n"),
        po(0, "SHA-256 hash: " + "CC" * 32 + "\nSHA-1 hash: " + "DD" * 20 + "\n"),
    ]
    assert UNINSTALL.judge_verify(None, p, clean).done
    left = list(clean)
    left[1] = po(1, "/Library/LaunchDaemons/com.1e.pkg.1E.Client.plist\n", "ls: /x: No such file")
    left[4] = po(0, "SHA-256 hash: " + "CC" * 32 + "\nSHA-1 hash: " + "BB" * 20 + "\n")
    v = UNINSTALL.judge_verify(None, p, left)
    assert v.failure is not None and v.failure.error_type == "LeftOver"
    assert "com.1e.pkg.1E.Client.plist" in v.failure.message and "CA " + "BB" * 20 in v.failure.message
    with pytest.raises(ValueError):
        UNINSTALL.judge_verify(None, p, clean[:3])


def test_parse_logs() -> None:
    outs = {
        "sw_vers": po(0, "x"),
        "log:client": po(0, "a\nb\n"),
        "log:daemon": po(1, "", "tail: /Library/Logs/1E.Client.Daemon.log: No such file or directory"),
    }
    assert parse_logs(outs) == {"client": "a\nb\n", "daemon": ""}
    with pytest.raises(ValueError, match="did not finish"):
        parse_logs({"log:client": po(None)})
    with pytest.raises(ValueError, match="lines"):
        LogsParams("r", 0)


def test_explainers() -> None:
    r = explain_launchctl(
        ("launchctl", "bootout", "system/x"), 1, "", "Boot-out failed: 1: Operation not permitted"
    )
    assert r is not None and r.error_type == "PermissionDenied"
    r = explain_launchctl(
        ("launchctl", "kickstart", "system/x"), 113, "", 'Could not find service "x" in domain'
    )
    assert r is not None and r.error_type == "DaemonNotLoaded"
    r = explain_launchctl(("launchctl", "load", "-w", "p"), 5, "", "Load failed: 5: Input/output error")
    assert r is not None and r.error_type == "LaunchctlFailed"
    r = explain_updateconf(("/bin/sh", "u.sh"), 1, "", "1E.Client.updateconf.sh: unknown property 'FOO'")
    assert r is not None and r.error_type == "InvalidConfKey"
    r = explain_remove(
        ("pkgutil", "--forget", "x"), 1, "", 'Unknown error Error Domain=NSCocoaErrorDomain Code=513 "x"'
    )
    assert r is not None and r.error_type == "PermissionDenied"
    r = explain_remove(("/bin/sh", "uninstall.sh"), 1, "", "uninstall.sh: something broke")
    assert r is not None and r.error_type == "UninstallFailed"
    r = explain_keychain(("security", "delete-identity"), 1, "", 'Unable to delete certificate matching "AA"')
    assert r is not None and r.error_type == "KeychainItemMissing"
    r = explain_keychain(
        ("security", "delete-certificate"), 1, "", "SecKeychainItemDelete: Write permissions error."
    )
    assert r is not None and r.error_type == "KeychainWriteRefused"
