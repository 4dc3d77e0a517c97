"""The Fleet API: start a spec's simulated Macs in this process and drive their faults.

    async with Fleet.start("fleet.yaml") as fleet:
        host = fleet.hosts["mac-01"]
        async with asyncssh.connect(**host.connect_kwargs(fleet.client_key_path)) as conn: ...

Layout of the state directory (kept across restarts when you pass one; a temporary one is removed at stop):
    client_ed25519, client_ed25519.pub     the fleet's client key pair (private key 0600)
    hosts/<name>/ssh_host_ed25519_key      the host key (reused across restarts, replaced by rotate_host_key)
    hosts/<name>/root/ ...                 the Mac's file system (see macsim.mac)

Host state is created lazily: a host's VirtualMac (file system skeleton, preinstalled client, MDM-trusted
CAs, boot) is built the first time something touches `host.mac` or a client runs a command or opens SFTP,
so starting 1000 hosts costs one host key and one listening socket each.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from macsim.keychain import CertItem, TrustSetting, cert_label, cert_sha1
from macsim.mac import VirtualMac
from macsim.server import ExecHandler, HostServer, write_private_key
from macsim.spec import Faults, FleetSpec, HostSpec, SpecError, load_spec

log = logging.getLogger(__name__)

CLIENT_KEY_NAME = "client_ed25519"
DEFAULT_REBOOT_DOWNTIME = 0.5


def _optional_hook(module: str, name: str) -> Callable[..., Any] | None:
    """A function another macsim area provides, or None while that area has not landed it yet."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def _read_cas(path: str, where: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SpecError(
            f"{where}: cannot read CA file {path}: {e.strerror} "
            "(write the lab CAs first with `python -m macsim artifacts`)"
        ) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise SpecError(f"{where}: {path} is not a PEM or DER certificate") from None
    return certs


class SimHost:
    """One simulated Mac of a running fleet."""

    def __init__(
        self,
        index: int,
        spec: HostSpec,
        state_dir: Path,
        authorized_keys: list[asyncssh.SSHKey],
        trusted_cas: list[x509.Certificate],
        exec_handler: ExecHandler | None,
    ) -> None:
        self.index = index
        self.spec = spec
        self.state_dir = state_dir
        self._trusted_cas = trusted_cas
        self._mac: VirtualMac | None = None
        self._boot: asyncio.Future[Any] | None = None
        self.rebooting = False  # the port stays closed until the reboot finishes
        key_path = state_dir / "ssh_host_ed25519_key"
        self.server = HostServer(spec, key_path, authorized_keys, self, exec_handler)

    # ---- identity ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hostname(self) -> str:
        """What `hostname` prints on this Mac (the name its client certificate must carry)."""
        return self.spec.hostname

    @property
    def address(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host_key_public(self) -> str:
        """The host key as an OpenSSH public key line."""
        return self.server.host_key_public

    def known_hosts_line(self) -> str:
        """`[127.0.0.1]:PORT ssh-ed25519 AAAA...`, the line OpenSSH's known_hosts holds for this host."""
        return self.server.known_hosts_line()

    def connect_kwargs(self, client_key: Path | str | None = None) -> dict[str, Any]:
        """Keyword arguments for `asyncssh.connect` with strict host key checking against this host."""
        kwargs: dict[str, Any] = {
            "host": self.address,
            "port": self.port,
            "username": self.spec.user,
            "known_hosts": asyncssh.import_known_hosts(self.known_hosts_line() + "\n"),
        }
        if client_key is not None:
            kwargs["client_keys"] = [str(client_key)]
        return kwargs

    # ---- the Mac ----------------------------------------------------------------------------------
    @property
    def mac(self) -> VirtualMac:
        """The host's VirtualMac, created (and booted) on first use."""
        if self._mac is None:
            self._mac = self._materialize()
        return self._mac

    async def ready(self) -> VirtualMac:
        """The Mac once its boot work (launchd starting daemons) has finished."""
        mac = self.mac
        if self._boot is not None:
            await self._boot
        return mac

    def _materialize(self) -> VirtualMac:
        fresh = not (self.state_dir / "root").exists()
        mac = VirtualMac(self.spec, self.state_dir)
        if fresh:
            self._trust_as_profile(mac)
            if self.spec.installed_client is not None:
                self._preinstall(mac)
        self._start_boot(mac)
        return mac

    def _trust_as_profile(self, mac: VirtualMac) -> None:
        """Put the spec's CAs in the System keychain trusted as an MDM configuration profile leaves them."""
        if not self._trusted_cas:
            return
        kc = mac.keychain
        with kc.lock:
            for cert in self._trusted_cas:
                der = cert.public_bytes(serialization.Encoding.DER)
                sha1 = cert_sha1(der)
                if kc.find_cert(sha1) is None:
                    b64 = base64.b64encode(der).decode()
                    kc.certs.append(CertItem(sha1=sha1, der_b64=b64, label=cert_label(cert)))
                if kc.trust_for(sha1, ("profile",)) is None:
                    kc.trust.append(TrustSetting(sha1=sha1, result="trustRoot", domain="profile"))
            kc.save()

    def _preinstall(self, mac: VirtualMac) -> None:
        ic = self.spec.installed_client
        assert ic is not None
        fn = _optional_hook("macsim.client1e.preinstall", "preinstall") or _optional_hook(
            "macsim.client1e", "preinstall"
        )
        if fn is None:
            log.warning(
                "macsim %s: installed_client %s requested but macsim.client1e has no preinstall() yet; "
                "the host starts without a client",
                self.name,
                ic.version,
            )
            return
        fn(mac, ic.version, ic.switch, ic.background_url, running=ic.running)

    def _start_boot(self, mac: VirtualMac) -> None:
        boot = _optional_hook("macsim.client1e.launchd", "boot")
        if boot is None:
            return
        result = boot(mac)
        if inspect.isawaitable(result):
            self._boot = asyncio.ensure_future(result)

    async def reboot_mac(self) -> None:
        """What happens on the Mac during a reboot: a new boot time, then launchd starts its daemons."""
        mac = self.mac
        if self._boot is not None:
            await asyncio.gather(self._boot, return_exceptions=True)
            self._boot = None
        mac.state.booted_at = time.time()
        mac.save_state()
        self._start_boot(mac)
        if self._boot is not None:
            await self._boot


class Fleet:
    """A running set of simulated Macs. Create with `Fleet.start(...)`, then `async with` or `await` it."""

    def __init__(self, spec: FleetSpec, state_dir: Path | None, exec_handler: ExecHandler | None) -> None:
        self.spec = spec
        self._requested_state_dir = state_dir
        self._exec_handler = exec_handler
        self.hosts: dict[str, SimHost] = {}
        self.state_dir: Path = Path()
        self.client_key_path: Path = Path()
        self.client_public_key: str = ""
        self._owns_state_dir = False
        self._started = False

    @classmethod
    def start(
        cls,
        spec: FleetSpec | str | Path,
        state_dir: Path | None = None,
        *,
        exec_handler: ExecHandler | None = None,
    ) -> Fleet:
        """A fleet for `spec` (a FleetSpec or a YAML path), started by `async with` or `await`.

        state_dir overrides the spec's; without either, a temporary directory is used and removed at stop.
        exec_handler replaces the macsim shell (tests of the transport only).
        Raises SpecError (on start) for an unreadable spec, missing CA files, bad keys or a taken port.
        """
        if not isinstance(spec, FleetSpec):
            spec = load_spec(spec)
        return cls(spec, state_dir, exec_handler)

    def __await__(self) -> Generator[Any, None, Fleet]:
        return self._open().__await__()

    async def __aenter__(self) -> Fleet:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- lifecycle --------------------------------------------------------------------------------
    async def _open(self) -> Fleet:
        if self._started:
            return self
        if self._requested_state_dir is not None:
            self.state_dir = Path(self._requested_state_dir)
        elif self.spec.state_dir:
            self.state_dir = Path(self.spec.state_dir)
        else:
            self.state_dir = Path(tempfile.mkdtemp(prefix="macsim-"))
            self._owns_state_dir = True
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            client_key = self._client_key()
            ca_cache: dict[str, list[x509.Certificate]] = {}
            for i, hs in enumerate(self.spec.hosts):
                keys = [client_key, *self._authorized_keys(i, hs)]
                cas: list[x509.Certificate] = []
                for j, path in enumerate(hs.trusted_cas):
                    if path not in ca_cache:
                        ca_cache[path] = _read_cas(path, f"hosts[{i}].trusted_cas[{j}]")
                    cas += ca_cache[path]
                host_dir = self.state_dir / "hosts" / hs.name
                host_dir.mkdir(parents=True, exist_ok=True)
                self.hosts[hs.name] = SimHost(i, hs, host_dir, keys, cas, self._exec_handler)
            for host in self.hosts.values():
                try:
                    await host.server.start()
                except OSError as e:
                    raise SpecError(
                        f"hosts[{host.index}].port: cannot listen on 127.0.0.1:{host.spec.port}: {e.strerror}"
                    ) from None
        except BaseException:
            await self.stop()
            raise
        self._started = True
        return self

    def _client_key(self) -> asyncssh.SSHKey:
        """The fleet's client key: the spec's client_key file, or one generated into the state dir."""
        path = Path(self.spec.client_key) if self.spec.client_key else self.state_dir / CLIENT_KEY_NAME
        if path.exists():
            try:
                key = asyncssh.read_private_key(str(path))
            except (asyncssh.KeyImportError, OSError) as e:
                raise SpecError(f"client_key: cannot read private key {path}: {e}") from None
        else:
            key = asyncssh.generate_private_key("ssh-ed25519", comment="macsim-fleet")
            write_private_key(path, key)
            key.write_public_key(str(path) + ".pub")
        self.client_key_path = path
        self.client_public_key = key.export_public_key("openssh").decode().strip()
        return key

    @staticmethod
    def _authorized_keys(i: int, hs: HostSpec) -> list[asyncssh.SSHKey]:
        keys = []
        for j, line in enumerate(hs.authorized_keys):
            try:
                keys.append(asyncssh.import_public_key(line))
            except asyncssh.KeyImportError as e:
                raise SpecError(f"hosts[{i}].authorized_keys[{j}]: not an OpenSSH public key: {e}") from None
        return keys

    async def stop(self) -> None:
        """Stop every host: listeners closed, connections reset, running commands cancelled."""
        await asyncio.gather(*(h.server.stop() for h in self.hosts.values()), return_exceptions=True)
        self._started = False
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # ---- control ----------------------------------------------------------------------------------
    def host(self, name: str) -> SimHost:
        """The host named `name`. Raises KeyError naming the fleet's hosts when unknown."""
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in this fleet (hosts: {', '.join(self.hosts)})") from None

    def set_faults(self, name: str, **knobs: Any) -> Faults:
        """Change fault knobs of a running host; unspecified knobs keep their value. Applies to the next
        connection or request (refuse_connections closes or reopens the port at once).
        Raises KeyError for an unknown host, SpecError naming the knob for a bad value or unknown knob."""
        host = self.host(name)
        try:
            new = Faults.model_validate({**host.spec.faults.model_dump(), **knobs})
        except ValidationError as e:
            details = "; ".join(
                f"faults.{'.'.join(str(p) for p in err['loc'])}: "
                + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
                for err in e.errors()
            )
            raise SpecError(f"{name}: {details}") from None
        old = host.spec.faults
        host.spec.faults = new
        if new.refuse_connections and not old.refuse_connections:
            host.server.close_listener()
        elif old.refuse_connections and not new.refuse_connections and not host.rebooting:
            host.server.open_listener()
        return new

    def rotate_host_key(self, name: str) -> str:
        """Give the host a new host key (as a reinstalled Mac would). Returns the new public key line."""
        return self.host(name).server.rotate_host_key()

    async def reboot(self, name: str, downtime: float = DEFAULT_REBOOT_DOWNTIME) -> None:
        """Reboot a host: every connection is reset, the port refuses connections for `downtime`
        seconds, running commands are cancelled, files and keychain are kept, and launchd boots again."""
        host = self.host(name)
        host.rebooting = True
        try:
            await host.server.stop()
            await asyncio.sleep(downtime)
            await host.reboot_mac()
        finally:
            host.rebooting = False
        if not host.spec.faults.refuse_connections:
            host.server.open_listener()
            await host.server.wait_listening()

    def known_hosts(self) -> str:
        """known_hosts text for every host of the fleet."""
        return "".join(h.known_hosts_line() + "\n" for h in self.hosts.values())

    def write_known_hosts(self, path: Path) -> Path:
        """Write `known_hosts()` to path and return it."""
        path.write_text(self.known_hosts())
        return path
