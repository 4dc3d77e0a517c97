# ruff: noqa: F811  (pytest fixtures are imported by name)
"""Trust changes that never answer (a dialog nobody sees over SSH), bounded by the install's watchdog
script; `add-certificates` for intermediates; `delete-certificate -t` refused as a whole; the shell's
background jobs, `kill` and `wait PID` the watchdog rests on."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from macsim.artifacts.certs import CertArtifacts, _ca
from macsim.keychain import SYSTEM_KEYCHAIN
from macsim.spec import Faults
from tasks.install.trust import TIMEOUT_NOTE, TIMEOUT_STATUS, bounded
from tests.macsim.shell_fixtures import run as run_text
from tests.macsim.test_security_support import arts, make_mac, put, run  # noqa: F401

ADD = ["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", SYSTEM_KEYCHAIN]


async def test_a_dialog_blocks_until_the_watchdog_kills_it(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path, faults=Faults(trust_dialog=True))
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    t0 = time.monotonic()
    r = await run_text(mac, "sudo " + shlex.join(bounded((*ADD, ca), timeout=1)))
    took = time.monotonic() - t0
    assert r.status == TIMEOUT_STATUS and TIMEOUT_NOTE in r.err, r
    assert took < 3, took
    # the certificate is added before the trust change is asked for (trusted_cert_add.c)
    assert [c.label for c in mac.keychain.certs] == ["macfleet Lab Root CA"] and mac.keychain.trust == []


async def test_a_quick_answer_passes_through_the_watchdog(tmp_path: Path, arts: CertArtifacts) -> None:
    refused = make_mac(tmp_path / "r", faults=Faults(trust_refused=True))
    ca = put(refused, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    t0 = time.monotonic()
    r = await run_text(refused, "sudo " + shlex.join(bounded((*ADD, ca))))
    assert time.monotonic() - t0 < 2  # not the 10 s bound: the watchdog is stopped with the command
    assert (r.status, r.err) == (
        1,
        "SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction was "
        "possible.\n",
    )
    ok = make_mac(tmp_path / "ok")
    ca = put(ok, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    r = await run_text(ok, "sudo " + shlex.join(bounded((*ADD, ca))))
    assert (r.status, r.err) == (0, "")
    assert ok.keychain.is_trusted_root(ok.keychain.certs[0].sha1)


async def test_background_jobs_kill_and_wait(tmp_path: Path) -> None:
    mac = make_mac(tmp_path)
    r = await run_text(mac, 'sleep 30 & p=$!; kill -9 "$p"; wait "$p"; echo "rc=$?"')
    assert (r.status, r.out) == (0, "rc=137\n")
    r = await run_text(mac, 'sleep 0 & p=$!; wait "$p"; echo "rc=$?"; wait 4242; echo "rc=$?"')
    assert r.out == "rc=0\nrc=127\n" and "pid 4242 is not a child of this shell" in r.err
    r = await run_text(mac, "kill 99999")
    assert (r.status, r.err) == (1, "kill: 99999: No such process\n")
    r = await run_text(mac, "sleep 30 & kill -s TERM $!; wait $!; echo $?")
    assert r.out == "143\n"
    r = await run_text(mac, "kill -BOGUS 1")
    assert r.status == 2 and r.err.startswith("kill: unknown signal BOGUS; valid signals:")


async def test_add_certificates_adds_an_intermediate_without_trust(tmp_path: Path, arts: CertArtifacts) -> None:
    mac = make_mac(tmp_path, faults=Faults(trust_refused=True))  # no trust change involved: not refused
    issuing, _ = _ca("macfleet Issuing CA", issuer=_ca("macfleet Other Root CA"), path_len=0)
    src = tmp_path / "issuing.pem"
    src.write_bytes(issuing.public_bytes(Encoding.PEM))
    pem = put(mac, src, "/private/tmp/issuing.pem", mode=0o644)
    r = await run(mac, ["security", "add-certificates", "-k", SYSTEM_KEYCHAIN, pem])
    assert (r.status, r.err) == (0, "")
    assert [c.label for c in mac.keychain.certs] == ["macfleet Issuing CA"] and mac.keychain.trust == []
    again = await run(mac, ["security", "add-certificates", "-k", SYSTEM_KEYCHAIN, pem])
    assert (again.status, again.err) == (1, f"security: {pem}: already in {SYSTEM_KEYCHAIN}\n")
    user = await run(mac, ["security", "add-certificates", "-k", SYSTEM_KEYCHAIN, pem], uid=501)
    assert (user.status, user.err) == (1, "security: SecCertificateAddToKeychain: Write permissions error.\n")
    bad = await run(mac, ["security", "add-certificates", "-x", pem])
    assert bad.status == 2 and "Usage: add-certificates [-k keychain] file..." in bad.err


async def test_delete_certificate_t_refused_keeps_certificate_and_trust(
    tmp_path: Path, arts: CertArtifacts
) -> None:
    mac = make_mac(tmp_path)
    ca = put(mac, arts.lab_ca.pem, "/private/tmp/lab.pem", mode=0o644)
    assert (await run(mac, [*ADD, ca])).status == 0
    sha1 = mac.keychain.certs[0].sha1
    mac.spec.faults.trust_refused = True
    r = await run(mac, ["security", "delete-certificate", "-t", "-Z", sha1, SYSTEM_KEYCHAIN])
    assert (r.status, r.err) == (
        153,  # -60007 & 0xFF
        "security: SecTrustSettingsRemoveTrustSettings (admin): The authorization was denied since no user "
        "interaction was possible.\n",
    )
    assert [c.sha1 for c in mac.keychain.certs] == [sha1] and mac.keychain.is_trusted_root(sha1)
    # without a trust setting, -t has nothing to ask for: the certificate goes
    mac.spec.faults.trust_refused = False
    assert (await run(mac, ["security", "remove-trusted-cert", "-d", ca])).status == 0
    mac.spec.faults.trust_refused = True
    r = await run(mac, ["security", "delete-certificate", "-t", "-Z", sha1, SYSTEM_KEYCHAIN])
    assert (r.status, r.err) == (0, "") and mac.keychain.certs == []
