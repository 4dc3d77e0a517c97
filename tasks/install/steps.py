"""The install workflow's step planners: (MacFacts, InstallParams) -> Plan. Pure."""

from __future__ import annotations

from tasks.facts import CONF, LABEL, PKG_ID, PLIST, SYSTEM_KEYCHAIN, UPDATECONF, MacFacts
from tasks.hostnames import match_names
from tasks.install.decide import SUPPORTED_ARCHES, conf_ok, decide
from tasks.install.params import InstallParams
from tasks.install.pkginfo import PKG_VERSION_NAME, PKG_VERSION_SCRIPT
from tasks.install.trust import trust_command
from tasks.install.verify import LOG_MARK, verify_commands
from tasks.model import Command, Plan, Upload, commands, noop, refuse

SERVICE = f"system/{LABEL}"
# `pkgutil --check-signature` exits 0 for any valid signature: the team id check greps its chain. A constant
# script; the package path and team id arrive as positional parameters (no shell text is built from data).
CHECK_SIGNATURE_SCRIPT = 'pkgutil --check-signature "$1" && pkgutil --check-signature "$1" | grep -F "($2)"'
# `./install.sh ARGS` with the stage as the working directory, as the 1E guide types it. Constant: the stage
# directory and install.sh's arguments arrive as positional parameters ($0 is the name "install").
RUN_IN_STAGE_SCRIPT = 'cd "$1" && shift && exec ./install.sh "$@"'


def preflight(facts: MacFacts, params: InstallParams) -> Plan:
    # which of the Mac's names the certificate must carry: tasks/hostnames.py (exact, case-sensitive)
    named = match_names(params.identity.names, facts.names, params.name_rule)
    if not named.ok:
        return refuse("HostnameMismatch", named.problem(), named.hint())
    if facts.arch not in SUPPORTED_ARCHES:
        return refuse(
            "UnsupportedArchitecture",
            f"unsupported architecture {facts.arch!r}",
            "the 1E Client runs on Intel Macs and on Apple silicon with Rosetta 2",
        )
    d = decide(facts, params)
    if facts.free_bytes < d.needed_bytes:
        return refuse(
            "InsufficientSpace",
            f"{facts.free_bytes} bytes free on / but {d.needed_bytes} needed "
            f"(DMG {params.dmg.size} bytes, margin, floor {params.min_free_bytes})",
            "free space on the Mac's startup volume",
        )
    return noop(
        f"checks passed: {named.describe()}; {facts.arch}, "
        f"{facts.free_bytes} bytes free (need {d.needed_bytes})"
    )


def rosetta(facts: MacFacts, params: InstallParams) -> Plan:
    if facts.arch != "arm64":
        return noop(f"{facts.arch} Mac: runs the Intel client natively")
    if facts.can_run_x86_64:
        return noop("Rosetta 2 is present (arch -x86_64 runs)")
    return commands(Command(("/usr/sbin/softwareupdate", "--install-rosetta", "--agree-to-license")))


def push(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    uploads: list[Upload] = []
    if d.push_dmg:
        uploads.append(Upload("dmg", params.dmg.file_name, sha256=params.dmg.sha256))
    if d.identity_import:
        uploads.append(Upload("pfx", "client.p12"))
    uploads += [Upload(f"ca:{ca.sha256}", ca.pem_name) for ca in d.untrusted_cas]
    if not uploads:
        why = "target version installed" if not d.install_pkg else "DMG in the cache"
        return noop(f"nothing to send: {why}, identity in place, CAs trusted")
    return commands(uploads=tuple(uploads))


def trust(facts: MacFacts, params: InstallParams) -> Plan:
    """Roots: `add-trusted-cert` under a watchdog (trust.py), or, in profile mode, a `verify-cert` probe whose
    failure means the MDM profile has not arrived. Intermediates: `add-certificates` (no trust setting)."""
    if params.trust_mode == "skip":
        return noop("CA trust is not managed here (--trust skip)")
    d = decide(facts, params)
    if not d.untrusted_cas:
        return noop(
            "every CA is in place (roots trusted, intermediates in the System keychain)"
            if params.cas
            else "no CA to trust"
        )
    return commands(*(trust_command(params, ca) for ca in d.untrusted_cas))


def mount(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    if not d.install_pkg:
        return noop(f"version {params.version} is installed: no image to mount")
    dmg = params.dmg_path_for(d.use_cached_dmg)
    # -noverify: the image's SHA-256 was checked on the Mac after the upload (or when it was cached) against
    # the artifact store, which validated its UDIF checksum when it was added; a second pass over the
    # whole image on every Mac buys nothing
    return commands(
        Command(("hdiutil", "attach", "-nobrowse", "-noverify", "-mountpoint", params.mount_point, dmg))
    )


def _updateconf(params: InstallParams) -> Command:
    # `sh SCRIPT CONF PROPERTY=value...` as the 1E guide types it (the conf path is its first argument)
    return Command(
        (
            "/bin/sh",
            UPDATECONF,
            CONF,
            f"SWITCH={params.switch}",
            f"BACKGROUNDCHANNELURL={params.background_url}",
        )
    )


def install(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    if not d.install_pkg:
        if d.update_conf:
            return commands(_updateconf(params))
        return noop(f"version {params.version} installed and configured for {params.switch}")
    mp = params.mount_point
    pkg = f"{mp}/{params.dmg.pkg_name}"
    # the image's content, not its name, decides: the pkg named for the version must carry that version in
    # its PackageInfo (an 8.0.2.5 image renamed ..._v8.0.1.23.dmg is refused here, before anything changes)
    cmds: list[Command] = [
        Command(
            (
                "/bin/sh",
                "-c",
                PKG_VERSION_SCRIPT,
                PKG_VERSION_NAME,
                mp,
                params.dmg.pkg_name,
                PKG_ID,
                params.version,
                params.pkginfo_dir,
            ),
            mutating=False,
        )
    ]
    if params.expected_team_id:
        cmds.append(
            Command(
                ("/bin/sh", "-c", CHECK_SIGNATURE_SCRIPT, "check-signature", pkg, params.expected_team_id),
                mutating=False,
            )
        )
    if params.method == "pkg":
        # the plain pkg resets the conf to defaults: keep every setting across it (save, install, restore),
        # then set the wanted Switch and Background Channel
        keep = facts.conf is not None
        if keep:
            cmds.append(Command(("mkdir", "-p", params.stage_dir)))
            cmds.append(Command(("cp", "-p", CONF, params.saved_conf_path)))
        cmds.append(Command(("installer", "-pkg", pkg, "-target", "/")))
        if keep:
            cmds.append(Command(("cp", "-p", params.saved_conf_path, CONF)))
        cmds.append(_updateconf(params))
    else:
        stage = params.stage_dir
        # the 1E guide: "Copy the script to a separate directory together with the package", then
        # `sudo ./install.sh SWITCH:PORT BG_URL` there. Both are real copies (cp -p keeps install.sh's exec
        # bit and the pkg's mode; a link would leave the script resolving the pkg through the image) into a
        # 0700 directory inside the private dir; cleanup removes it with the private dir.
        cmds.append(Command(("mkdir", "-p", "-m", "0700", stage)))
        cmds.append(Command(("cp", "-p", f"{mp}/scripts/install.sh", pkg, f"{stage}/")))
        # Over a configured client install.sh runs WITHOUT arguments, the guide's upgrade form that keeps the
        # whole conf (with arguments it configures a fresh conf: other settings would be lost); updateconf
        # then sets the wanted Switch and Background Channel only if they differ.
        conf = facts.conf or {}
        upgrade = bool(conf.get("Switch")) and bool(conf.get("BackgroundChannelUrl"))
        args = () if upgrade else (params.switch, params.background_url)
        cmds.append(Command(("/bin/sh", "-c", RUN_IN_STAGE_SCRIPT, "install", stage, *args)))
        if upgrade and not conf_ok(facts, params):
            cmds.append(_updateconf(params))
    return commands(*cmds)


def unmount(facts: MacFacts, params: InstallParams) -> Plan:
    if not decide(facts, params).install_pkg:
        return noop("nothing was mounted")
    return commands(Command(("hdiutil", "detach", params.mount_point)))


def identity(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    if not d.identity_import:
        return noop(
            f"identity {params.identity.sha1.upper()} is in the System keychain and the running client "
            "(installed binary) is connected"
        )
    cmds: list[Command] = []
    if d.identity_present:
        cmds.append(
            Command(("security", "delete-identity", "-Z", params.identity.sha1.upper(), SYSTEM_KEYCHAIN))
        )
    cmds.append(Command(("security", "-i"), stdin="identity-import"))
    cmds.append(Command(("rm", "-f", params.pfx_path)))
    return commands(*cmds)


def start(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    if not d.restart:
        return noop(f"the client runs (pid {facts.job.pid}) and is connected; nothing changed")
    # LOG_MARK first, in the same exec: verify judges only what the client logs after this (re)start
    if d.loaded_at_start:
        return commands(LOG_MARK, Command(("launchctl", "kickstart", "-k", SERVICE)))
    return commands(LOG_MARK, Command(("launchctl", "load", "-w", PLIST)))


def verify(facts: MacFacts, params: InstallParams) -> Plan:
    return commands(*verify_commands(params.switch))


def cleanup(facts: MacFacts, params: InstallParams) -> Plan:
    d = decide(facts, params)
    if not d.pushes:
        return noop("nothing was pushed: no private directory to remove")
    cmds: list[Command] = []
    cache = params.cache_path
    if cache is not None and params.cache_dir is not None and d.push_dmg:
        cmds.append(Command(("mkdir", "-p", params.cache_dir)))
        cmds.append(Command(("mv", "-f", params.pushed_dmg_path, cache)))
    cmds.append(Command(("rm", "-rf", params.private_dir)))
    return commands(*cmds)


__all__ = [
    "cleanup",
    "identity",
    "install",
    "mount",
    "preflight",
    "push",
    "rosetta",
    "start",
    "trust",
    "unmount",
    "verify",
]
