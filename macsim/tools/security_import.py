"""`security import`: certificates and PKCS#12 identities into a keychain, strictly as macOS does.

Source: Apple's SecurityTool keychain_import.c (apple-open-source/macos). The getopt string is
"k:t:f:P:wxa:hAT:"; the input file is argv[1] (before the options); `-T` names are resolved with
SecTrustedApplicationCreateFromPath while options are parsed, so a missing path fails at once with
"security: SecTrustedApplicationCreateFromPath PATH: UNIX[No such file or directory]" (observed on a
Mac, quoted in public notes); success prints "N identity/identities imported." then "N certificate(s)
imported." (real output quoted in Apple-Actions/import-codesign-certs#14 and elsewhere:
"1 identity imported.", "2 certificates imported.").
A PKCS#12 whose chain certificates are already present imports anyway (pkcs12Keychain.cpp skips
duplicate certificates); an identity whose private key is already present fails with errSecDuplicateItem.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import posixpath

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from macsim.keychain import AppAccess, Keychain, KeyItem, cert_der, cert_label, cert_sha1, public_key_hash
from macsim.tools.pkcs12_strict import Pkcs12FormatError, Pkcs12Refused, inspect_pkcs12, load_strict
from macsim.tools.security_common import (
    ERR_DUPLICATE_ITEM,
    ERR_INTERACTION_NOT_ALLOWED,
    ERR_NO_SUCH_KEYCHAIN,
    ERR_PKCS12_VERIFY,
    ERR_UNKNOWN_FORMAT,
    ERR_WR_PERM,
    SHOW_USAGE,
    Ctx,
    KeychainNotFound,
    getopt,
)
from macsim.vfs import VfsError

TYPES = ("pub", "priv", "session", "cert", "agg")
FORMATS = (
    "openssl",
    "openssh1",
    "openssh2",
    "bsafe",
    "raw",
    "pkcs7",
    "pkcs8",
    "pkcs12",
    "netscape",
    "x509",
    "pemseq",
)
SECURITY_TOOL = "/usr/bin/security"  # the creating application: trusted by default when no -T/-A is given


def _unix_error(err: int) -> str:
    return {errno.ENOENT: "No such file or directory", errno.EACCES: "Permission denied"}.get(
        err, "Input/output error"
    )


def app_access(ctx: Ctx, path: str) -> AppAccess:
    """A trusted application as SecTrustedApplicationCreateFromPath records it: the path and a hash of the
    code at this moment (a later upgrade replaces the bytes, so the old grant no longer matches).

    Raises VfsError (an OSError) when the path does not exist or the caller cannot read it."""
    full = ctx.p.path(path)
    fs = ctx.p.mac.fs
    fs.check_traverse(full, ctx.p.uid)
    if not fs.exists(full):
        raise VfsError(errno.ENOENT, path)
    real = fs.real(full)
    if real.is_dir():  # an .app bundle: identify it by its path (bundles are not modelled further)
        digest = hashlib.sha256(b"bundle:" + full.encode()).hexdigest()
    else:
        fs.check_read(full, ctx.p.uid)
        digest = hashlib.sha256(real.read_bytes()).hexdigest()
    return AppAccess(path=fs.canonical(full), cdhash=digest)


def keychain_import(ctx: Ctx, argv: list[str]) -> int:
    """security import inputfile [-k kc] [-t type] [-f format] [-w] [-x] [-P pass] [-a n v] [-A] [-T app]."""
    if len(argv) < 2 or (len(argv) == 2 and argv[1].startswith("-")):
        return SHOW_USAGE
    in_file = argv[1]
    kc_name: str | None = None
    fmt: str | None = None
    passphrase: str | None = None
    non_extractable = False
    always_allow = False
    access_specified = False
    apps: list[AppAccess] = []
    opts, _rest = getopt(ctx, argv, "k:t:f:P:wxa:hAT:", start=2)
    for ch, arg in opts:
        if ch == "k":
            kc_name = arg
        elif ch == "t":
            if arg not in TYPES:
                return SHOW_USAGE
        elif ch == "f":
            if arg not in FORMATS:
                return SHOW_USAGE
            fmt = arg
        elif ch == "x":
            non_extractable = True
        elif ch == "P":
            passphrase = arg
        elif ch == "w":
            pass  # wrapped keys: only meaningful for key formats, which we do not import
        elif ch == "a":
            return SHOW_USAGE  # extended attributes take a second argument; not emulated
        elif ch == "A":
            always_allow = access_specified = True
        elif ch == "T":
            if arg:
                try:
                    apps.append(app_access(ctx, arg))
                except OSError as e:
                    ctx.sec_error(
                        f"SecTrustedApplicationCreateFromPath {arg}: UNIX[{_unix_error(e.errno or 0)}]"
                    )
                    return 1
            access_specified = True
        else:  # -h
            return SHOW_USAGE

    # The default keychain: root's is the System keychain; a user's login keychain is locked in an SSH
    # session, so importing into it needs a prompt that cannot be shown.
    keychain: Keychain
    if kc_name is None:
        if not ctx.is_root:
            ctx.sec_perror("SecKeychainItemImport", ERR_INTERACTION_NOT_ALLOWED)
            return 1
        keychain = ctx.p.mac.keychain
    else:
        try:
            keychain = ctx.open_keychain(kc_name)
        except KeychainNotFound:
            ctx.sec_perror("SecKeychainItemImport", ERR_NO_SUCH_KEYCHAIN)
            return 1
    try:
        data = ctx.read_file(in_file)
    except OSError as e:
        ctx.sec_error(f"Error reading infile {in_file}: {_unix_error(e.errno or 0)}")
        return 1
    if not access_specified:
        try:
            apps = [app_access(ctx, SECURITY_TOOL)]
        except OSError:
            apps = []
    is_pkcs12 = fmt == "pkcs12" or (
        (fmt is None and posixpath.splitext(in_file)[1].lower() in (".p12", ".pfx"))
        or _looks_pkcs12(data, fmt)
    )
    if is_pkcs12:
        return _import_pkcs12(ctx, keychain, data, in_file, passphrase, apps, always_allow, non_extractable)
    return _import_certs(ctx, keychain, data)


def _looks_pkcs12(data: bytes, fmt: str | None) -> bool:
    if fmt is not None:
        return False
    try:
        inspect_pkcs12(data)
        return True
    except Pkcs12FormatError:
        return False


def _import_pkcs12(
    ctx: Ctx,
    keychain: Keychain,
    data: bytes,
    in_file: str,
    passphrase: str | None,
    apps: list[AppAccess],
    always_allow: bool,
    non_extractable: bool,
) -> int:
    if passphrase is None:
        # Without -P, security asks for the passphrase on the terminal (or SecurityAgent); there is none here.
        ctx.sec_perror("SecKeychainItemImport", ERR_INTERACTION_NOT_ALLOWED)
        return 1
    try:
        loaded = load_strict(data, passphrase)
    except Pkcs12FormatError:
        ctx.sec_perror("SecKeychainItemImport", ERR_UNKNOWN_FORMAT)
        return 1
    except Pkcs12Refused:
        ctx.sec_perror("SecKeychainItemImport", ERR_PKCS12_VERIFY)
        return 1
    if not ctx.can_write_system_keychain():
        ctx.sec_perror("SecKeychainItemImport", ERR_WR_PERM)
        return 1
    leaf = loaded.cert
    key_item: KeyItem | None = None
    if loaded.key is not None and leaf is not None:
        key_der = loaded.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_item = KeyItem(
            key_hash=public_key_hash(leaf),
            label=cert_label(leaf),
            key_der_b64=base64.b64encode(key_der).decode(),
            apps=list(apps),
            allow_all=always_allow,
            extractable=not non_extractable,
        )
        if keychain.key_for(leaf) is not None:
            ctx.sec_perror("SecKeychainItemImport", ERR_DUPLICATE_ITEM)
            return 1
    with keychain.lock:
        if key_item is not None:
            keychain.add_key(key_item)
        if leaf is not None:
            keychain.add_certificate(leaf)
        for c in loaded.chain:
            keychain.add_certificate(c)  # a duplicate certificate is skipped, not an error
    identities = 1 if key_item is not None else 0
    certs = len(loaded.chain) + (1 if leaf is not None and key_item is None else 0)
    _report(ctx, identities, certs)
    return 0


def _import_certs(ctx: Ctx, keychain: Keychain, data: bytes) -> int:
    certs: list[x509.Certificate]
    try:
        if b"-----BEGIN " in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        ctx.sec_perror("SecKeychainItemImport", ERR_UNKNOWN_FORMAT)
        return 1
    if not ctx.can_write_system_keychain():
        ctx.sec_perror("SecKeychainItemImport", ERR_WR_PERM)
        return 1
    if any(keychain.find_cert(cert_sha1(cert_der(c))) is not None for c in certs):
        ctx.sec_perror("SecKeychainItemImport", ERR_DUPLICATE_ITEM)
        return 1
    for c in certs:
        keychain.add_certificate(c)
    _report(ctx, 0, len(certs))
    return 0


def _report(ctx: Ctx, identities: int, certs: int) -> None:
    if identities:
        ctx.out(f"{identities} {'identities' if identities > 1 else 'identity'} imported.\n")
    if certs:
        ctx.out(f"{certs} {'certificates' if certs > 1 else 'certificate'} imported.\n")
