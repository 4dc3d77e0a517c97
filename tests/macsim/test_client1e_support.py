"""Helpers for the client1e tests: a VirtualMac on tmp_path, a Proc with in-memory streams, test PKI.

(No tests here: pytest collects the module and finds none.)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from macsim.client1e import paths
from macsim.keychain import AppAccess, CertItem, KeyItem, TrustSetting, cert_label, cert_sha1, public_key_hash
from macsim.mac import VirtualMac
from macsim.shell.proc import Proc, Session, Tool
from macsim.shell.streams import BufferOutput, BytesStdin
from macsim.spec import HostSpec


@dataclass
class Result:
    rc: int
    out: str
    err: str
    raw_out: bytes


def make_mac(tmp_path: Path, **spec: Any) -> VirtualMac:
    spec.setdefault("name", "lab-mac-01")
    return VirtualMac(HostSpec(**spec), tmp_path / spec["name"])


async def run(
    tool: Tool, mac: VirtualMac, argv: list[str], uid: int = 0, stdin: bytes = b"", cwd: str = "/"
) -> Result:
    out, err = BufferOutput(), BufferOutput()
    p = Proc(
        mac=mac,
        argv=argv,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        cwd=cwd,
        uid=uid,
        user="root" if uid == 0 else mac.spec.user,
        stdin=BytesStdin(stdin),
        stdout=out,
        stderr=err,
        session=Session(),
    )
    rc = await tool(p)
    return Result(rc, out.text(), err.text(), out.getvalue())


# ---- PKI --------------------------------------------------------------------------------------------------
@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "Lab Root CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_leaf(
    ca: Issued,
    cn: str,
    san: list[str] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    expired: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=400), now - dt.timedelta(days=35))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=365))
    )
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return Issued(b.sign(ca.key, hashes.SHA256()), key)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def add_cert(mac: VirtualMac, cert: x509.Certificate, trusted: bool = False) -> None:
    kc = mac.keychain
    sha1 = cert_sha1(_der(cert))
    kc.certs.append(
        CertItem(sha1=sha1, der_b64=base64.b64encode(_der(cert)).decode(), label=cert_label(cert))
    )
    if trusted:
        kc.trust.append(TrustSetting(sha1=sha1))
    kc.save()


def add_identity(
    mac: VirtualMac, leaf: Issued, allow_installed: bool = True, allow_all: bool = False
) -> None:
    """The identity as `security import -T <binary>` (or -A) leaves it: key access bound to the installed
    binary's path and SHA-256 at import time."""
    add_cert(mac, leaf.cert)
    apps = []
    if allow_installed:
        cdhash = hashlib.sha256(mac.fs.read_bytes(paths.BINARY)).hexdigest()
        apps.append(AppAccess(path=paths.BINARY, cdhash=cdhash))
    der = leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    mac.keychain.keys.append(
        KeyItem(
            key_hash=public_key_hash(leaf.cert),
            label=cert_label(leaf.cert),
            key_der_b64=base64.b64encode(der).decode(),
            apps=apps,
            allow_all=allow_all,
        )
    )
    mac.keychain.save()
