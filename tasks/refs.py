"""References to what a run carries to a Mac, by identity (never the bytes): the client's disk image, a CA
certificate, the device's client certificate. Shared by the workflows that push or remove them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CaRef:
    """A CA certificate for the System keychain. pem_name: its file name in the private dir. self_signed: a
    root (trusted with `add-trusted-cert -r trustRoot`); otherwise an intermediate, which needs no trust
    setting, only to be in the keychain (`add-certificates`)."""

    sha256: str
    sha1: str
    subject: str
    common_name: str | None
    pem_name: str
    self_signed: bool = True


@dataclass(frozen=True)
class DmgRef:
    """The 1E Client disk image (e.g. file_name "1e.client-macOS_v8.0.2.5.dmg")."""

    version: str
    sha256: str
    size: int
    file_name: str

    @property
    def pkg_name(self) -> str:
        """The package inside the image: the DMG's name with .pkg (1e.client-macOS_v<version>.pkg)."""
        return self.file_name.removesuffix(".dmg") + ".pkg"


@dataclass(frozen=True)
class IdentityRef:
    """The device's client certificate: SHA-1/SHA-256 hex (any case) and its names (CN + SAN DNS)."""

    sha1: str
    sha256: str
    names: tuple[str, ...]
