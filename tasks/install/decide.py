"""What the install workflow will do on this Mac, decided once from the facts gathered at the start.

The runner runs consecutive EXEC steps in one exec, so every planner plans from the same initial facts,
assuming the earlier steps succeed. `decide(facts, params)` is that shared view; each planner reads it.

Rules (../shared/DESIGN.md rule 3: a finished Mac plans zero mutating commands):
- install: the receipt's version equals the target AND the binary is there → no package install. The conf
  must hold the wanted Switch and BackgroundChannelUrl, else `1E.Client.updateconf.sh` (only that).
  method "pkg" resets the conf, so a pkg install is always followed by updateconf (over a configured
  client the conf is saved before `installer` and restored after it, so every other setting survives).
  install.sh over a configured client runs without arguments (the guide's upgrade form: keeps the conf),
  followed by updateconf only when Switch or BackgroundChannelUrl differ.
- verify: running, connected, AND the receipt's version is the target (VersionMismatch otherwise).
- CA trust is *proven* by facts when the CA (by SHA-256) is in the System keychain, no other certificate
  there carries its label, and `dump-trust-settings -d` lists that label with only trust-as-root results.
  Otherwise the PEM is pushed and `add-trusted-cert` runs behind a `verify-cert` unless-probe. That holds
  for roots (self-signed); an intermediate needs no trust setting: it is in place when the System keychain
  holds it, else `add-certificates` adds it. trust_mode "skip" leaves every CA alone (none is "untrusted").
- identity (no re-import) when ALL hold: our identity's SHA-1 is in the System keychain; the install step
  will not replace the binary (target version installed); the launchd job is running; and the client log's
  last start block says "Connected to Switch". Why that proves key access for the installed binary: the
  client's access to the private key is checked at start-up, and replacing the binary (pkg preinstall,
  install.sh) stops the job, so a job that is running with a connected last start block was started from the
  installed binary and could use the key. Anything less (not running, key-access error, never connected)
  re-imports the identity: delete it first (import refuses duplicates), import with -T for the binary.
- start: restart when anything changed (package, conf, identity, CA trust) or the daemon is not running
  and connected. The job is loaded at that point when install.sh ran (it loads it), when facts show it
  loaded and no pkg install unloaded it: then `kickstart -k`; else the documented `load -w`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.facts import MacFacts
from tasks.install.params import CaRef, InstallParams

SUPPORTED_ARCHES = ("arm64", "x86_64")
SPACE_MARGIN = 100 * 1024 * 1024  # receipts, logs and the conf beyond the payload estimate


@dataclass(frozen=True)
class Decision:
    install_pkg: bool
    update_conf: bool
    use_cached_dmg: bool
    push_dmg: bool
    untrusted_cas: tuple[CaRef, ...]
    identity_present: bool
    identity_import: bool
    restart: bool
    loaded_at_start: bool
    needed_bytes: int

    @property
    def pushes(self) -> bool:
        return self.push_dmg or self.identity_import or bool(self.untrusted_cas)


def conf_ok(facts: MacFacts, params: InstallParams) -> bool:
    conf = facts.conf
    return (
        conf is not None
        and conf.get("Switch") == params.switch
        and conf.get("BackgroundChannelUrl") == params.background_url
    )


def ca_trusted(facts: MacFacts, ca: CaRef) -> bool:
    """The facts prove the CA is trusted as a root in the admin domain (see the module docstring)."""
    mine = [c for c in facts.certificates if c.sha256.upper() == ca.sha256.upper()]
    if not mine or mine[0].label is None:
        return False
    label = mine[0].label
    if sum(1 for c in facts.certificates if c.label == label) != 1:
        return False  # another certificate has the same name: the trust entry could be its
    entries = [t for t in facts.admin_trust if t.name == label]
    return len(entries) == 1 and entries[0].trusted


def ca_in_place(facts: MacFacts, ca: CaRef) -> bool:
    """A root: trusted (ca_trusted). An intermediate: in the System keychain (it needs no trust setting)."""
    if ca.self_signed:
        return ca_trusted(facts, ca)
    return any(c.sha256.upper() == ca.sha256.upper() for c in facts.certificates)


def identity_ok(facts: MacFacts, params: InstallParams, install_pkg: bool) -> bool:
    return facts.identity(params.identity.sha1) is not None and not install_pkg and facts.connected


def decide(facts: MacFacts, params: InstallParams) -> Decision:
    version_installed = facts.client_version == params.version and facts.binary_sha256 is not None
    install_pkg = not version_installed
    if install_pkg:
        update_conf = params.method == "pkg"  # install.sh configures; the plain pkg resets the conf
    else:
        update_conf = not conf_ok(facts, params)
    use_cached = install_pkg and facts.dmg_cached and params.cache_dir is not None
    push_dmg = install_pkg and not use_cached
    skip = params.trust_mode == "skip"
    untrusted = () if skip else tuple(ca for ca in params.cas if not ca_in_place(facts, ca))
    present = facts.identity(params.identity.sha1) is not None
    reimport = not identity_ok(facts, params, install_pkg)
    restart = install_pkg or update_conf or reimport or bool(untrusted) or not facts.connected
    if install_pkg:
        loaded = params.method == "install.sh"
    else:
        loaded = facts.job.loaded
    # The one free-space rule (the run's params carry no size estimate of their own; min_free_bytes is only
    # an extra floor, 0 unless a caller asks for one).
    needed = params.min_free_bytes
    if install_pkg:
        # the DMG itself (unless cached), the pkg copied to the stage dir, the installed payload
        needed += (0 if use_cached else params.dmg.size) + 2 * params.dmg.size + SPACE_MARGIN
    return Decision(
        install_pkg=install_pkg,
        update_conf=update_conf,
        use_cached_dmg=use_cached,
        push_dmg=push_dmg,
        untrusted_cas=untrusted,
        identity_present=present,
        identity_import=reimport,
        restart=restart,
        loaded_at_start=loaded,
        needed_bytes=needed,
    )
