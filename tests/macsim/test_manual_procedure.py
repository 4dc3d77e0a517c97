"""End to end: the 1E guide's manual procedure, typed command by command over real SSH, ends connected.

Each command is its own exec request, as an admin types them: over the asyncssh client on an Intel Mac and
on Apple silicon without Rosetta 2, and over the OpenSSH `ssh`/`scp`/`sftp` binaries with strict host key
checking. Then the pkg path (installer + updateconf.sh), the upgrade path (install.sh without parameters,
re-import with -T) and the documented uninstall. Reference: ../shared/reference/1e-client-macos-install.txt.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography import x509

from macsim.client1e import paths
from macsim.fleet import Fleet, SimHost
from macsim.keychain import cert_der, cert_names, cert_sha1
from macsim.mac import VirtualMac
from tests.macsim.procedure_support import module_fleet

from .procedure_support import (
    NEW_VERSION,
    OLD_VERSION,
    SYSTEM_KC,
    UPLOAD_DIR,
    Artifacts,
    AsyncsshSession,
    OpenSSHSession,
    Session,
    assert_connected,
    attach_and_stage,
    client_log,
    import_pfx_with_T,
    manual_install,
    ok,
    open_asyncssh,
    q,
    restart_client,
    run_install_sh,
    trust_cas,
    upload_downloads,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOSTS = [
    {"name": "intel-01", "arch": "x86_64"},
    {"name": "m1-01", "arch": "arm64", "rosetta": False},
    {"name": "intel-ossh", "arch": "x86_64", "macos_version": "13.6.9", "macos_build": "22G830"},
    {"name": "intel-pkg", "arch": "x86_64"},
    {"name": "intel-up", "arch": "x86_64"},
    {"name": "intel-un", "arch": "x86_64"},
    {"name": "m2-stdin", "arch": "arm64", "rosetta": True, "host_name": "m2-stdin.corp.example"},
]


arts, fleet = module_fleet(HOSTS)


async def test_manual_procedure_over_asyncssh_on_intel(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["intel-01"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        pw = await manual_install(sess, arts)
    mac = host.mac
    # no Rosetta step on Intel, and every command of the procedure was a separate, logged exec
    assert not any("softwareupdate" in c.command for c in mac.commands)
    assert all(c.exit_status == 0 for c in mac.commands)
    ident = [i for i in mac.keychain.identities() if host.hostname in i.cert.x509().subject.rfc4514_string()]
    assert len(ident) == 1
    assert ident[0].key.allows(paths.BINARY, _binary_sha256(fleet, "intel-01"))
    for ca in (arts.certs.lab_ca.pem, arts.certs.switch_ca.pem):
        sha1 = cert_sha1(cert_der(x509.load_pem_x509_certificate(ca.read_bytes())))
        trust = mac.keychain.trust_for(sha1)
        assert trust is not None and trust.domain == "admin"
    # the guide's import puts the password in argv: the Mac's command log holds it. This is why the
    # orchestrator must never use -P in argv (see test_security_i_keeps_the_password_out_of_the_log).
    assert any(pw in c.command for c in mac.commands)


def _binary_sha256(fleet: Fleet, name: str) -> str:
    return hashlib.sha256(fleet.hosts[name].mac.fs.read_bytes(paths.BINARY)).hexdigest()


async def test_manual_procedure_over_asyncssh_on_arm64_without_rosetta(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["m1-01"]
    assert not host.mac.state.rosetta
    async with open_asyncssh(fleet, host) as conn:
        await manual_install(AsyncsshSession(host, conn), arts, kickstart=True)
    cmds = [c.command for c in host.mac.commands]
    rosetta = cmds.index("sudo /usr/sbin/softwareupdate --install-rosetta --agree-to-license")
    install = next(i for i, c in enumerate(cmds) if "./install.sh" in c)
    assert rosetta < install  # Rosetta before the Intel client is started, or it fails with bad CPU type
    assert f"sudo launchctl kickstart -k system/{paths.LABEL}" in cmds
    assert "Bad CPU type" not in client_log_text(host)


@pytest.mark.skipif(not all(shutil.which(b) for b in ("ssh", "scp", "sftp")),
                    reason="needs the OpenSSH client (openssh-client)")
async def test_manual_procedure_over_openssh_binaries(fleet: Fleet, arts: Artifacts, tmp_path: Path) -> None:
    host = fleet.hosts["intel-ossh"]
    known_hosts = fleet.write_known_hosts(tmp_path / "known_hosts")
    sess = OpenSSHSession(fleet, host, known_hosts, tmp_path)
    await manual_install(sess, arts)
    assert sess.uploads_via == ["sftp", "scp"]
    r = await sess.run("sw_vers -productVersion")
    assert (r.status, r.stdout) == (0, "13.6.9\n")
    # each exec request is exactly what was typed (no wrapper, no preamble), one per step of the guide
    cmds = [c.command for c in host.mac.commands]
    assert cmds[0].startswith("hdiutil attach -nobrowse -mountpoint ")
    assert sum(c.startswith("sudo security add-trusted-cert -d -r trustRoot") for c in cmds) == 2
    assert f"sudo launchctl load -w {paths.PLIST}" in cmds


async def test_pkg_path_installer_updateconf_certificates_load(fleet: Fleet, arts: Artifacts) -> None:
    """The guide's option 2: `installer -pkg`, 1E.Client.updateconf.sh, certificates, `launchctl load -w`."""
    host = fleet.hosts["intel-pkg"]
    switches = "tachyon.acme.local:4000;tachyon.acme.com:4000"
    urls = "https://tachyon.acme.local:443/Background/;https://tachyon.acme.com:443/Background/"
    cas = [arts.certs.lab_ca.pem, arts.certs.switch_ca.pem]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await upload_downloads(sess, arts, NEW_VERSION, cas)
        volume = await attach_and_stage(sess, NEW_VERSION)
        r = await ok(sess, f"sudo installer -pkg {volume}/{paths.pkg_name(NEW_VERSION)} -target /")
        assert "installer: The install was successful." in r.stdout
        # the package alone does not start the client: grep finds nothing and exits 1
        listed = await sess.run("sudo launchctl list | grep -i 1e")
        assert (listed.status, listed.stdout) == (1, "")
        conf = host.mac.fs.read_text(paths.CONF)
        assert "Switch=tachyon.acme.local" not in conf
        await ok(sess, f"sudo sh {q(paths.UPDATECONF)} {q(paths.CONF)} SWITCH={q(switches)} "
                       f"BACKGROUNDCHANNELURL={q(urls)}")
        conf = host.mac.fs.read_text(paths.CONF)
        assert f"Switch={switches}" in conf and f"BackgroundChannelUrl={urls}" in conf
        await ok(sess, f"hdiutil eject {volume}")
        await trust_cas(sess, cas)
        await import_pfx_with_T(sess, arts)
        await ok(sess, f"sudo launchctl load -w {paths.PLIST}")
        await assert_connected(sess, NEW_VERSION, switch="tachyon.acme.local:4000")


async def test_upgrade_with_install_sh_keeps_conf_and_needs_a_fresh_import(
    fleet: Fleet, arts: Artifacts
) -> None:
    host = fleet.hosts["intel-up"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        pw = await manual_install(sess, arts, OLD_VERSION)
        conf_before = host.mac.fs.read_text(paths.CONF)
        await sess.upload([arts.dmg[NEW_VERSION]], UPLOAD_DIR)
        stage = "/private/tmp/1e.upgrade"
        volume = await attach_and_stage(sess, NEW_VERSION, stage)
        await run_install_sh(sess, stage=stage)  # no parameters: deduced from the existing configuration
        await ok(sess, f"hdiutil detach {volume}")
        assert host.mac.fs.read_text(paths.CONF) == conf_before
        info = await ok(sess, f"pkgutil --pkg-info {paths.PKG_ID}")
        assert f"version: {NEW_VERSION}" in info.stdout
        # the new binary is not on the key's access list: the key-access error the guide describes
        last = client_log(sess).strip().splitlines()[-1]
        assert "Cannot obtain the client certificate's private key: The user name or passphrase you " \
               "entered is not correct." in last
        pfx = arts.pfx(host.name)
        again = f"sudo security import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg -f pkcs12 -P {q(pw)} " \
                f"-T {q(paths.BINARY)}"
        dup = await sess.run(again)
        assert dup.status != 0
        assert "The specified item already exists in the keychain." in dup.stderr
        sha1 = _identity_sha1(host.mac, host.hostname)
        await ok(sess, f"sudo security delete-identity -Z {sha1} {SYSTEM_KC}")
        assert _identity_sha1(host.mac, host.hostname) is None
        await ok(sess, again)
        await restart_client(sess)
        await assert_connected(sess, NEW_VERSION)


async def test_documented_uninstall_leaves_no_receipt_and_no_files(fleet: Fleet, arts: Artifacts) -> None:
    host = fleet.hosts["intel-un"]
    async with open_asyncssh(fleet, host) as conn:
        sess = AsyncsshSession(host, conn)
        await manual_install(sess, arts)
        files = (await ok(sess, f"pkgutil --only-files --files {paths.PKG_ID}")).stdout.split("\n")
        files = [f for f in files if f]
        assert "Application Support/1E/Client/1E.Client" in files
        # the guide's three lines, inside one root shell
        await ok(sess, f"sudo sh -c \"cd /Library; pkgutil --only-files --files {paths.PKG_ID} "
                       f"| tr '\\n' '\\0' | xargs -n 1 -0 rm; pkgutil --forget {paths.PKG_ID}\"")
        gone = await sess.run(f"pkgutil --pkg-info {paths.PKG_ID}")
        assert gone.status == 1
        assert f"No receipt for '{paths.PKG_ID}' found at '/'." in gone.out
        pkgs = await ok(sess, "pkgutil --pkgs")
        assert paths.PKG_ID not in pkgs.stdout
    fs = host.mac.fs
    assert not fs.exists(f"{paths.RECEIPTS_DIR}/{paths.PKG_ID}.plist")
    for f in files:
        assert not fs.exists(f"/Library/{f}"), f
    assert not fs.exists(paths.BINARY) and not fs.exists(paths.PLIST)


async def _import_via_security_i(sess: Session, arts: Artifacts) -> str:
    """The orchestrator's way: the import line goes on stdin to `security -i`, never in argv."""
    pfx = arts.pfx(sess.host.name)
    pw = arts.password(pfx)
    line = f"import {UPLOAD_DIR}/{pfx.name} -k {SYSTEM_KC} -t agg -f pkcs12 -P {pw} -T \"{paths.BINARY}\"\n"
    r = await ok(sess, "sudo security -i", stdin=line)
    assert "1 identity imported." in r.stdout
    return pw


async def test_security_i_keeps_the_password_out_of_the_log(fleet: Fleet, arts: Artifacts) -> None:
    """Same procedure, import through `security -i` on stdin: the password never reaches the command log.

    The host has a HostName set, so its certificate carries that name, not LocalHostName.local."""
    host = fleet.hosts["m2-stdin"]
    async with open_asyncssh(fleet, host) as conn:
        pw = await manual_install(AsyncsshSession(host, conn), arts, importer=_import_via_security_i)
    assert host.hostname == "m2-stdin.corp.example"
    assert "sudo security -i" in [c.command for c in host.mac.commands]
    assert all(pw not in c.command for c in host.mac.commands)
    assert pw not in (host.state_dir / "commands.jsonl").read_text()
    assert not any("softwareupdate" in c.command for c in host.mac.commands)  # Rosetta already there


def client_log_text(host: SimHost) -> str:
    fs = host.mac.fs
    return fs.read_text(paths.CLIENT_LOG) + fs.read_text(paths.DAEMON_LOG)


def _identity_sha1(mac: VirtualMac, host_name: str) -> str | None:
    for ident in mac.keychain.identities():
        if host_name in cert_names(ident.cert.x509()):
            return cert_sha1(ident.cert.der)
    return None
