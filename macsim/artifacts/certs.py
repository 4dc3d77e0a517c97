"""Certificates for tests and the demo: two root CAs, one client PFX per host, and the bad ones.

Everything is made with `cryptography`. Good PFX files are what macOS can import: legacy
pbeWithSHAAnd3-KeyTripleDES-CBC with a SHA-1 MAC; `openssl3-default.pfx` is protected as OpenSSL 3 does by
default (PBES2/AES-256-CBC, HMAC-SHA-256), which macOS refuses. Passwords are random, written only to
`pfx-passwords.json` (mode 0600); `manifest.json` lists the files and never a password.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LAB_CA_NAME = "macfleet Lab Root CA"
SWITCH_CA_NAME = "macfleet Switch Root CA"
UNKNOWN_INTERMEDIATE_NAME = "macfleet Unknown Issuing CA"
PASSWORD_ALPHABET = string.ascii_letters + string.digits  # quote-free: safe on a `security -i` line
LEGACY_KDF_ROUNDS = 2048  # OpenSSL's PKCS#12 default iteration count
BAD_KINDS = ("wrong-case", "expired", "server-auth", "no-chain", "openssl3-default")


@dataclass
class CaFiles:
    pem: Path
    der: Path


@dataclass
class CertArtifacts:
    """What write_cert_artifacts wrote. Paths are absolute; `manifest.json` stores them relative to `out`."""

    out: Path
    lab_ca: CaFiles
    switch_ca: CaFiles
    ca_bundle: Path
    host_pfx: dict[str, Path]  # fleet handle -> PFX
    host_names: dict[str, str]  # fleet handle -> the exact host name in the certificate
    bad_pfx: dict[str, Path]  # kind (BAD_KINDS) -> PFX
    bad_host: str  # the handle whose host name the bad certificates carry
    passwords_file: Path
    manifest: Path
    _passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def password_for(self, pfx: Path) -> str:
        """The password of a PFX written here (read from the 0600 passwords file). Raises KeyError."""
        if not self._passwords:
            self._passwords = json.loads(self.passwords_file.read_text())
        return self._passwords[pfx.name]


def _password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(24))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "macfleet lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _ca(
    cn: str, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None, path_len: int | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A CA certificate: self-signed root, or an intermediate signed by `issuer`."""
    key = _key()
    now = _now()
    issuer_name = issuer[0].subject if issuer else _name(cn)
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256()), key


def _client(
    cn: str,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey],
    *,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A client certificate: CN and SAN DNS = cn, EKU clientAuth, KU digitalSignature + keyEncipherment."""
    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
        .sign(issuer[1], hashes.SHA256())
    )
    return cert, key


def pfx_bytes(
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    chain: list[x509.Certificate],
    password: str,
    *,
    legacy: bool = True,
) -> bytes:
    """A PKCS#12: legacy 3DES + SHA-1 MAC (macOS imports it), or OpenSSL 3's default PBES2/AES + SHA-256."""
    mac: hashes.HashAlgorithm
    if legacy:
        algo, mac = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()  # noqa: S303 - the legacy MAC is the point: macOS only verifies SHA-1
    else:
        algo, mac = pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()
    enc = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(LEGACY_KDF_ROUNDS if legacy else 2048)
        .key_cert_algorithm(algo)
        .hmac_hash(mac)
        .build(password.encode())
    )
    friendly = next(iter(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))).value
    return pkcs12.serialize_key_and_certificates(str(friendly).encode(), key, cert, chain or None, enc)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _different_case(name: str) -> str:
    upper = name.upper()
    return upper if upper != name else name.lower() if name.lower() != name else name.swapcase()


def write_cert_artifacts(out: Path, hosts: dict[str, str], bad_host: str | None = None) -> CertArtifacts:
    """Write the lab and Switch root CAs (PEM, DER, bundle), one PFX per host, the bad PFX files, the
    passwords file (0600) and `manifest.json` into `out` (created if needed).

    `hosts` maps the fleet's handle to the exact host name `hostname` prints there; the certificates carry
    that name as CN and SAN DNS. The bad certificates target `bad_host` (default: the first host).
    Raises ValueError when `hosts` is empty or bad_host is not one of its handles.
    """
    if not hosts:
        raise ValueError("write_cert_artifacts: no hosts given")
    target = bad_host if bad_host is not None else next(iter(hosts))
    if target not in hosts:
        raise ValueError(f"write_cert_artifacts: bad_host {target!r} is not one of the hosts")
    out.mkdir(parents=True, exist_ok=True)
    lab = _ca(LAB_CA_NAME)
    switch = _ca(SWITCH_CA_NAME)
    cas: dict[str, CaFiles] = {}
    for stem, (cert, _) in (("lab-root-ca", lab), ("switch-root-ca", switch)):
        pem, der = out / f"{stem}.pem", out / f"{stem}.der"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        cas[stem] = CaFiles(pem=pem, der=der)
    bundle = out / "ca-bundle.pem"
    bundle.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (lab[0], switch[0])))

    passwords: dict[str, str] = {}

    def emit(
        filename: str,
        cert: x509.Certificate,
        key: rsa.RSAPrivateKey,
        chain: list[x509.Certificate],
        legacy: bool = True,
    ) -> Path:
        pw = _password()
        path = out / filename
        _write_private(path, pfx_bytes(cert, key, chain, pw, legacy=legacy))
        passwords[filename] = pw
        return path

    host_pfx: dict[str, Path] = {}
    for handle, host_name in hosts.items():
        cert, key = _client(host_name, lab)
        host_pfx[handle] = emit(f"{handle}.pfx", cert, key, [lab[0]])

    name = hosts[target]
    now = _now()
    bad: dict[str, Path] = {}
    c, k = _client(_different_case(name), lab)
    bad["wrong-case"] = emit("bad-wrong-case.pfx", c, k, [lab[0]])
    c, k = _client(
        name, lab, not_before=now - datetime.timedelta(days=400), not_after=now - datetime.timedelta(days=30)
    )
    bad["expired"] = emit("bad-expired.pfx", c, k, [lab[0]])
    c, k = _client(name, lab, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    bad["server-auth"] = emit("bad-server-auth.pfx", c, k, [lab[0]])
    unknown_root = _ca("macfleet Unknown Root CA")
    intermediate = _ca(UNKNOWN_INTERMEDIATE_NAME, issuer=unknown_root, path_len=0)
    c, k = _client(name, intermediate)
    bad["no-chain"] = emit("bad-no-chain.pfx", c, k, [])
    c, k = _client(name, lab)
    bad["openssl3-default"] = emit("openssl3-default.pfx", c, k, [lab[0]], legacy=False)

    passwords_file = out / "pfx-passwords.json"
    _write_private(passwords_file, json.dumps(passwords, indent=1, sort_keys=True).encode())
    manifest = out / "manifest.json"
    arts = CertArtifacts(
        out=out,
        lab_ca=cas["lab-root-ca"],
        switch_ca=cas["switch-root-ca"],
        ca_bundle=bundle,
        host_pfx=host_pfx,
        host_names=dict(hosts),
        bad_pfx=bad,
        bad_host=target,
        passwords_file=passwords_file,
        manifest=manifest,
    )
    manifest.write_text(json.dumps(_manifest_json(arts), indent=1, sort_keys=True))
    return arts


def _manifest_json(a: CertArtifacts) -> dict[str, object]:
    def rel(p: Path) -> str:
        return str(p.relative_to(a.out))

    return {
        "format": "macsim-cert-artifacts-1",
        "lab_ca": {"pem": rel(a.lab_ca.pem), "der": rel(a.lab_ca.der), "subject_cn": LAB_CA_NAME},
        "switch_ca": {"pem": rel(a.switch_ca.pem), "der": rel(a.switch_ca.der), "subject_cn": SWITCH_CA_NAME},
        "ca_bundle": rel(a.ca_bundle),
        "hosts": {h: {"pfx": rel(p), "host_name": a.host_names[h]} for h, p in a.host_pfx.items()},
        "bad": {kind: rel(p) for kind, p in a.bad_pfx.items()},
        "bad_host": a.bad_host,
        "passwords_file": rel(a.passwords_file),
    }


def load_cert_artifacts(out: Path) -> CertArtifacts:
    """Read back what write_cert_artifacts wrote in `out` (its manifest.json). Raises OSError/KeyError."""
    data = json.loads((out / "manifest.json").read_text())
    return CertArtifacts(
        out=out,
        lab_ca=CaFiles(pem=out / data["lab_ca"]["pem"], der=out / data["lab_ca"]["der"]),
        switch_ca=CaFiles(pem=out / data["switch_ca"]["pem"], der=out / data["switch_ca"]["der"]),
        ca_bundle=out / data["ca_bundle"],
        host_pfx={h: out / v["pfx"] for h, v in data["hosts"].items()},
        host_names={h: v["host_name"] for h, v in data["hosts"].items()},
        bad_pfx={k: out / v for k, v in data["bad"].items()},
        bad_host=data["bad_host"],
        passwords_file=out / data["passwords_file"],
        manifest=out / "manifest.json",
    )
