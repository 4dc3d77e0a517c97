"""Host key policy: pinned keys, a known_hosts file, or trust on first use — strict unless told otherwise.

The policy is turned into a per-connection `HostKeyCheck` that asyncssh consults during the key exchange.
It gives asyncssh the trusted keys (so asyncssh asks the server only for those key types) and records the
key the server presented, so a refusal becomes a typed `HostKeyMismatch`/`HostKeyUnknown` naming both
fingerprints, and an accepted first-use key can be handed back to the caller to pin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from workers.ssh.errors import HostKeyError, HostKeyMismatch, HostKeyUnknown
from workers.ssh.filecache import FileVersionCache

_SSH_DEFAULT_PORT = 22


def parse_public_key(line: str) -> asyncssh.SSHKey:
    """Parse one OpenSSH public key line (`ssh-ed25519 AAAA... [comment]`).

    Raises ValueError (naming the line's first word only) when it is not a public key."""
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        first = line.strip().split(" ", 1)[0][:40] if line.strip() else "<empty>"
        raise ValueError(f"not an OpenSSH public key line (starts with {first!r})") from None


def key_line(key: asyncssh.SSHKey) -> str:
    """The key as `algorithm base64` — the form we pin (no comment)."""
    parts = key.export_public_key("openssh").decode("ascii").split()
    return " ".join(parts[:2])


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The key's `SHA256:...` fingerprint, as `ssh-keygen -l` prints it."""
    return str(key.get_fingerprint("sha256"))


@dataclass(frozen=True)
class HostKeyPolicy:
    """How to decide whether to trust the key a host presents.

    - `pinned`: OpenSSH public key lines for this host:port (from the database); when non-empty, only these
      keys are accepted, whatever the other fields say.
    - `known_hosts`: an OpenSSH known_hosts file consulted when nothing is pinned. Entries for a
      non-standard port must be written `[host]:port`, as OpenSSH requires (no fallback to the bare host).
    - `trust_on_first_use`: when neither pins nor the file know the host, accept the presented key and
      report it (`Connection.host_key_is_new`) so the caller pins it. Never overrides a known key.
    """

    pinned: tuple[str, ...] = ()
    known_hosts: Path | None = None
    trust_on_first_use: bool = False

    def __post_init__(self) -> None:
        for index, line in enumerate(self.pinned):
            try:
                parse_public_key(line)
            except ValueError as exc:
                raise ValueError(f"pinned host key #{index + 1}: {exc}") from None

    @classmethod
    def pin(cls, lines: Sequence[str]) -> HostKeyPolicy:
        """Strict policy: only the given public key lines are accepted."""
        return cls(pinned=tuple(lines))

    @classmethod
    def tofu(cls, pinned: Sequence[str] = ()) -> HostKeyPolicy:
        """Pins when there are some, else trust (and report) the first key seen."""
        return cls(pinned=tuple(pinned), trust_on_first_use=True)


_Trusted = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]


# Every connection of a run reads the same file: parsing a 1000-line file for each of 1000 Macs cost the
# controller 12 ms of CPU per Mac. An edited file is a new version, read again.
_KNOWN_HOSTS: FileVersionCache[asyncssh.SSHKnownHosts] = FileVersionCache(limit=16)


def read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """A known_hosts file, parsed once per version of it. Raises OSError, ValueError."""
    return _KNOWN_HOSTS.get(path, lambda p: asyncssh.read_known_hosts(str(p)))


class HostKeyCheck:
    """One connection's host key decision; asyncssh calls `trusted` then, for an untrusted key, `validate`."""

    def __init__(self, policy: HostKeyPolicy, host: str, port: int) -> None:
        self.policy = policy
        self.host = host
        self.port = port
        self.expected: list[asyncssh.SSHKey] = []
        self.presented: asyncssh.SSHKey | None = None
        self.accepted_first_use = False
        self.host_known = False  # the file has entries (keys or CAs) for this host: never trust on first use
        self._known: asyncssh.SSHKnownHosts | None = None
        if policy.known_hosts is not None and not policy.pinned:
            try:
                self._known = read_known_hosts(Path(policy.known_hosts))
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read known_hosts file {policy.known_hosts}: {exc}") from None

    def trusted(self, host: str, addr: str, port: int | None) -> _Trusted:
        """asyncssh's known_hosts callable: (trusted host keys, trusted CA keys, revoked keys)."""
        if self.policy.pinned:
            self.expected = [parse_public_key(line) for line in self.policy.pinned]
            return (list(self.expected), [], [])
        if self._known is not None:
            keys, cas, revoked = self._from_file(self._known, host, addr, port)
            self.expected = list(keys)
            self.host_known = bool(keys or cas)
            return (keys, cas, revoked)
        return ([], [], [])

    @staticmethod
    def _from_file(known: asyncssh.SSHKnownHosts, host: str, addr: str, port: int | None) -> _Trusted:
        if port in (None, _SSH_DEFAULT_PORT):
            found = known.match(host, addr, None)
            return (list(found[0]), list(found[1]), list(found[2]))
        # asyncssh falls back to port-less entries when none name the port; OpenSSH does not, and a key
        # recorded for port 22 must not vouch for another server on the same address. So match the
        # bracketed `[name]:port` forms only, for the name and for the address.
        keys: list[asyncssh.SSHKey] = []
        cas: list[asyncssh.SSHKey] = []
        revoked: list[asyncssh.SSHKey] = []
        for name in {host, addr} - {""}:
            found = known.match(f"[{name}]:{port}", "", None)
            keys += [k for k in found[0] if k not in keys]
            cas += [k for k in found[1] if k not in cas]
            revoked += [k for k in found[2] if k not in revoked]
        return (keys, cas, revoked)

    def validate(self, key: asyncssh.SSHKey) -> bool:
        """Decide on a key that is not among the trusted ones: accept only on first use with TOFU on."""
        self.presented = key
        if self.expected or self.host_known:
            return False
        if self.policy.trust_on_first_use:
            self.accepted_first_use = True
            return True
        return False

    def refusal(self) -> HostKeyError:
        """The typed error for a refused key (called after asyncssh raised HostKeyNotVerifiable)."""
        if self.presented is None:
            presented_fp, presented_line = "a key that is revoked or not usable", None
        else:
            presented_fp, presented_line = fingerprint(self.presented), key_line(self.presented)
        if self.expected or self.host_known or self.presented is None:
            return HostKeyMismatch(
                self.host, self.port, [fingerprint(k) for k in self.expected], presented_fp, presented_line
            )
        return HostKeyUnknown(self.host, self.port, presented_fp, presented_line)
