"""End to end: each documented wrong way fails over real SSH the way macOS and the 1E Client would.

Reference: ../shared/reference/1e-client-macos-install.txt and issue 2. Every command is one exec request
over asyncssh; assertions read exit statuses, the text printed, and the Mac's inspected state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from macsim.artifacts.certs import LAB_CA_NAME, SWITCH_CA_NAME
from macsim.artifacts.dmg import write_truncated_dmg
from macsim.client1e import paths
from macsim.fleet import Fleet, SimHost
from macsim.keychain import cert_der, cert_sha1
from tests.macsim.procedure_support import module_fleet

from .procedure_support import (
    BACKGROUND,
    NEW_VERSION,
    OLD_VERSION,
    SWITCH,
    SYSTEM_KC,
    UPLOAD_DIR,
    Artifacts,
    AsyncsshSession,
    attach_and_stage,
    client_log,
    daemon_log,
    ok,
    open_asyncssh,
    q,
    restart_client,
    run_install_sh,
    trust_cas,
    upload_downloads,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUDO_PASSWORD = "correct-horse-sudo"  # a test-only login password of the `sudo: password` host
HOSTS = [
    {"name": "w-no-t"},
    {"name": "w-case"},
    {"name": "w-pkgup"},
    {"name": "w-arm", "arch": "arm64", "rosetta": False},
    {"name": "w-bundle"},
    {"name": "w-tools", "arch": "arm64", "rosetta": True},
    {"name": "w-trust", "faults": {"trust_refused": True}},
    {"name": "w-sudo", "sudo": "password", "password": SUDO_PASSWORD},
    {"name": "w-small", "free_space_mb": 1},
]


arts, fleet = module_fleet(HOSTS, bad_host="w-case")


def _sha1(pem: Path) -> str:
    return cert_sha1(cert_der(x509.load_pem_x509_certificate(pem.read_bytes())))


def _labels(host: SimHost) -> list[str]:
    return [c.label for c in host.mac.keychain.certs]


async def _installed(sess: AsyncsshSession, arts: Artifacts, version: str = NEW_VERSION) -> None:
    """Upload, attach, stage, `sudo ./install.sh SWITCH URL`, detach, trust both CAs: all but the PFX."""
    cas = [arts.certs.lab_ca.pem, arts.certs.switch_ca.pem]
    await upload_downloads(sess, arts, version, cas)
    volume = await attach_and_stage(sess, version)
    await run_install_sh(sess, SWITCH, BACKGROUND)
    await ok(sess, f"hdiutil detach {volume}")
    await trust_cas(sess, cas)


async def test_pfx_imported_without_T_gives_the_key_access_error(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-no-t"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await _installed(sess, arts)
        pfx = arts.pfx(host.name)
        r = await ok(sess, f"sudo security import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg -f pkcs12 "
                           f"-P {q(arts.password(pfx))}")
        assert "1 identity imported." in r.stdout
        await restart_client(sess)
        last = client_log(sess).strip().splitlines()[-1]
    assert "ERROR" in last
    assert last.endswith("Cannot obtain the client certificate's private key: The user name or passphrase you "
                         "entered is not correct.")
    assert "Connected to Switch" not in client_log(sess)


async def test_certificate_cn_in_the_wrong_case_is_not_a_match(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-case"]
    bad = arts.certs.bad_pfx["wrong-case"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await _installed(sess, arts)
        await sess.upload([bad], UPLOAD_DIR)
        r = await ok(sess, f"sudo security import {UPLOAD_DIR}/{bad.name} -k {SYSTEM_KC} -t agg -f pkcs12 "
                           f"-P {q(arts.password(bad))} -T {q(paths.BINARY)}")
        assert "1 identity imported." in r.stdout  # macOS imports it happily; the client rejects it
        await restart_client(sess)
        listed = await ok(sess, "sudo launchctl list | grep -i 1e")
    assert listed.stdout.split()[-1] == paths.LABEL  # running, just not connected
    log = client_log(sess)
    assert log.strip().splitlines()[-1].endswith(
        f"no client certificate found matching {host.hostname} in /Library/Keychains/System.keychain"
    )
    assert host.hostname.upper() in [i.cert.label for i in host.mac.keychain.identities()]
    assert "Connected to Switch" not in log


async def test_upgrade_through_the_pkg_alone_resets_the_conf(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-pkgup"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await _installed(sess, arts, OLD_VERSION)
        assert f"Switch={SWITCH}" in host.mac.fs.read_text(paths.CONF)
        await sess.upload([arts.dmg[NEW_VERSION]], UPLOAD_DIR)
        volume = await attach_and_stage(sess, NEW_VERSION, "/private/tmp/1e.pkg-upgrade")
        r = await ok(sess, f"sudo installer -pkg {volume}/{paths.pkg_name(NEW_VERSION)} -target /")
        assert "installer: Upgrading at base path /" in r.stdout
        info = await ok(sess, f"pkgutil --pkg-info {paths.PKG_ID}")
        grep = await sess.run(f"grep -E '^(Switch|BackgroundChannelUrl)=' {q(paths.CONF)}")
    assert f"version: {NEW_VERSION}" in info.stdout
    assert grep.stdout == "Switch=\nBackgroundChannelUrl=\n"  # the defaults: the settings are gone


async def test_arm64_without_rosetta_bad_cpu_type(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-arm"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await upload_downloads(sess, arts, NEW_VERSION, [])
        await attach_and_stage(sess, NEW_VERSION)
        await sess.run(f"cd /private/tmp/1e.install && sudo ./install.sh {SWITCH} {BACKGROUND}")
        listed = await ok(sess, "sudo launchctl list | grep -i 1e")
        by_hand = await sess.run(f"{q(paths.BINARY)} --version")
    assert "Failed to start 1E Client: /Library/Application Support/1E/Client/1E.Client: Bad CPU type in " \
           "executable" in daemon_log(sess)
    pid, status, label = listed.stdout.split()
    assert (pid, status, label) == ("-", "78", paths.LABEL)  # launchd could not spawn it
    assert (by_hand.status, by_hand.stderr) == (126, f"zsh: bad CPU type in executable: {paths.BINARY}\n")
    assert "Connected to Switch" not in client_log(sess)


async def test_a_ca_bundle_trusts_only_its_first_certificate(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-bundle"]
    bundle = arts.certs.ca_bundle
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await sess.upload([bundle], UPLOAD_DIR)
        await ok(sess, f"sudo security add-trusted-cert -d -r trustRoot -k {SYSTEM_KC} {UPLOAD_DIR}/{bundle.name}")
        dump = await ok(sess, "security dump-trust-settings -d")
        found = await sess.run(f"security find-certificate -a -c {q(SWITCH_CA_NAME)} {SYSTEM_KC}")
    assert "Number of trusted certs = 1" in dump.stdout
    assert LAB_CA_NAME in dump.stdout and SWITCH_CA_NAME not in dump.stdout
    assert found.status != 0
    kc = host.mac.keychain
    assert _labels(host) == [LAB_CA_NAME]
    assert kc.trust_for(_sha1(arts.certs.lab_ca.pem)) is not None
    assert kc.trust_for(_sha1(arts.certs.switch_ca.pem)) is None


UNKNOWN_FLAGS = [
    ("security -Z", 2, "security: illegal option -- Z"),
    ("security import /private/tmp/x.pfx -Q", 2, "Usage: import inputfile"),
    ("hdiutil attach -bogus /private/tmp/x.dmg", 1, "Usage:\thdiutil attach [options] <image>"),
    ("installer -bogus", 1, "Usage: installer"),
    ("pkgutil --bogus", 1, "pkgutil: unrecognized option `--bogus'"),
    ("launchctl load -Z /Library/LaunchDaemons/x.plist", 64, "Usage: launchctl load"),
    ("softwareupdate --bogus", 1, "softwareupdate: unrecognized option `--bogus'"),
    ("sw_vers -bogus", 1, "usage: sw_vers"),
    ("scutil --bogus", 64, "usage: scutil --get pref"),
]


@pytest.mark.parametrize(("command", "status", "text"), UNKNOWN_FLAGS, ids=[c[0].split()[0] + "-" + c[0].split()[-1]
                                                                          for c in UNKNOWN_FLAGS])
async def test_an_unknown_flag_is_a_usage_error(fleet: Fleet, command: str, status: int, text: str) -> None:
    host = fleet.hosts["w-tools"]
    async with open_asyncssh(fleet, host) as conn:
        r = await AsyncsshSession(host, conn).run(command)
    assert r.status == status, r.out
    assert text in r.out


async def test_openssl3_default_pfx_is_refused_with_the_misleading_mac_error(
    fleet: Fleet, arts: Artifacts
) -> None:
    host = fleet.hosts["w-tools"]
    pfx = arts.certs.bad_pfx["openssl3-default"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await sess.upload([pfx], UPLOAD_DIR)
        before = len(host.mac.keychain.identities())
        # the right password, as `security -i` reads it from stdin
        r = await sess.run("sudo security -i", stdin=f"import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg "
                                                      f"-f pkcs12 -P {arts.password(pfx)}\n")
    assert r.status != 0
    assert "MAC verification failed during PKCS12 import (wrong password?)" in r.stderr
    assert len(host.mac.keychain.identities()) == before


async def test_import_with_T_before_the_client_is_installed_is_rejected(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-tools"]
    pfx = arts.pfx(host.name)
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await sess.upload([pfx], UPLOAD_DIR)
        r = await sess.run(f"sudo security import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg -f pkcs12 "
                           f"-P {q(arts.password(pfx))} -T {q(paths.BINARY)}")
    assert r.status == 1
    assert r.stderr == f"security: SecTrustedApplicationCreateFromPath {paths.BINARY}: UNIX[No such file or " \
                       "directory]\n"
    assert host.mac.keychain.identities() == []


async def test_truncated_dmg_is_refused_by_hdiutil(fleet: Fleet, tmp_path: Path) -> None:
    host = fleet.hosts["w-tools"]
    dmg = write_truncated_dmg(tmp_path, NEW_VERSION)
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await sess.upload([dmg], UPLOAD_DIR)
        r = await sess.run(f"hdiutil attach -nobrowse -mountpoint /private/tmp/trunc.mnt {UPLOAD_DIR}/{dmg.name}")
    assert (r.status, r.stderr) == (1, "hdiutil: attach failed - image not recognized\n")
    assert not any(m["image"].endswith(dmg.name) for m in host.mac.state.mounts.values())
    assert not host.mac.fs.exists("/private/tmp/trunc.mnt/scripts")


async def test_trust_refused_over_ssh(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-trust"]
    ca = arts.certs.lab_ca.pem
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await sess.upload([ca], UPLOAD_DIR)
        r = await sess.run(f"sudo security add-trusted-cert -d -r trustRoot -k {SYSTEM_KC} {UPLOAD_DIR}/{ca.name}")
    assert r.status != 0
    assert "The authorization was denied since no user interaction was possible." in r.stderr
    # the certificate lands in the keychain before the trust settings are refused (trusted_cert_add.c)
    assert _labels(host) == [LAB_CA_NAME]
    assert host.mac.keychain.trust_for(_sha1(ca)) is None


async def test_sudo_n_on_a_password_host(fleet: Fleet) -> None:
    host = fleet.hosts["w-sudo"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        denied = await sess.run("sudo -n launchctl list")
        wrong = await sess.run("sudo -S -p '' true", stdin="not-the-password\n")
        right = await sess.run("sudo -S -p '' id -u", stdin=SUDO_PASSWORD + "\n")
    assert (denied.status, denied.stderr) == (1, "sudo: a password is required\n")
    assert wrong.status == 1 and "incorrect password" in wrong.stderr
    assert (right.status, right.stdout) == (0, "0\n")
    assert all(SUDO_PASSWORD not in c.command for c in host.mac.commands)  # stdin is never logged


async def test_installer_with_too_little_free_space_installs_nothing(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["w-small"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await upload_downloads(sess, arts, NEW_VERSION, [])
        volume = await attach_and_stage(sess, NEW_VERSION)
        # fill the disk up to 16 KiB (the package needs more than that) as other data would
        filler = Path(arts.out) / "w-small-filler.bin"
        filler.write_bytes(b"\0" * (host.mac.free_bytes() - 16 * 1024))
        await sess.upload([filler], "/private/tmp/filler")
        r = await sess.run(f"sudo installer -pkg {volume}/{paths.pkg_name(NEW_VERSION)} -target /")
        receipts = await sess.run(f"pkgutil --pkg-info {paths.PKG_ID}")
    assert r.status == 1
    assert "installer: There is not enough space on the volume / to install" in r.stderr
    assert "The install was successful" not in r.out
    assert receipts.status == 1
    fs = host.mac.fs
    assert not fs.exists(paths.BINARY) and not fs.exists(paths.PLIST) and not fs.exists(paths.CONF)
    assert paths.LABEL not in host.mac.state.launchd
