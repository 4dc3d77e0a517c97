"""`security find-identity`, `find-certificate`, `delete-certificate` and `delete-identity`.

Source: Apple's SecurityTool identity_find.m, keychain_find.c and keychain_delete.c (apple-open-source/macos,
Security/SecurityTool/macOS/). find-identity prints, per policy, "Policy: X.509 Basic", "  Matching
identities", "  1) SHA1 \"label\" (CSSMERR_...)" ("%3d) "), "     N identities found", then
"  Valid identities only" and "     N valid identities found"; with -v only the valid block.
A name given to -c or delete-* is matched as a case-insensitive substring of the common name;
a hash by its SHA-1 or SHA-256.
"""

from __future__ import annotations

import base64
import textwrap

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from macsim.keychain import CertItem, Keychain, cert_common_name, cert_sha256
from macsim.tools.security_common import (
    ERR_AUTH_INTERACTION_NOT_ALLOWED,
    ERR_ITEM_NOT_FOUND,
    ERR_NO_SUCH_KEYCHAIN,
    ERR_WR_PERM,
    SHOW_USAGE,
    Ctx,
    KeychainNotFound,
    getopt,
)
from macsim.tools.security_trust import trust_change_refused

# find-identity -p values -> (policy name printed, evaluation policy) in identity_find.m's order.
IDENTITY_POLICIES = {
    "ssl-client": ("SSL (client)", "ssl-client"),
    "ssl-server": ("SSL (server)", "ssl-server"),
    "smime": ("S/MIME", "basic"),
    "eap": ("EAP", "eap-client"),
    "ipsec": ("IPsec", "basic"),
    "ichat": ("iChat", "basic"),
    "codesigning": ("Code Signing", "basic"),
    "basic": ("X.509 Basic", "basic"),
    "sys-default": ("", ""),
    "sys-kerberos-kdc": ("", ""),
    "appleID": ("AppleID Sharing", "basic"),
    "macappstore": ("Mac App Store Receipt", "basic"),
}


def find_identity(ctx: Ctx, argv: list[str]) -> int:
    """find-identity [-p policy]... [-s string] [-v] [keychain...]."""
    chosen: list[str] = []
    name: str | None = None
    valid_only = False
    opts, rest = getopt(ctx, argv, "hp:s:v")
    for ch, arg in opts:
        if ch == "p":
            if arg not in IDENTITY_POLICIES:
                return SHOW_USAGE
            if arg not in chosen:
                chosen.append(arg)
        elif ch == "s":
            name = arg
        elif ch == "v":
            valid_only = True
        else:
            return SHOW_USAGE
    try:
        keychains = ctx.search_list(rest)
    except KeychainNotFound:
        keychains = []  # SecIdentitySearch over a missing keychain simply finds nothing
    if not chosen:
        chosen = ["basic"]
    if name is not None:
        ctx.out(f'Looking for identities matching "{name}"\n')
    for key in IDENTITY_POLICIES:  # the order identity_find.m searches in, whatever the -p order
        if key not in chosen or key in ("sys-default", "sys-kerberos-kdc"):
            continue
        label, policy = IDENTITY_POLICIES[key]
        _identity_block(ctx, keychains, label, policy, name, valid_only)
    return 0


def _identity_block(
    ctx: Ctx, keychains: list[Keychain], label: str, policy: str, name: str | None, valid_only: bool
) -> None:
    rows: list[tuple[str, str, str | None]] = []
    for kc in keychains:
        for ident in kc.identities():
            cert = ident.cert.x509()
            ev = kc.evaluate(cert, policy=policy, name=name if policy == "ssl-server" else None)
            rows.append((ident.cert.sha1, ident.cert.label, ev.error))
    out: list[str] = []
    if not valid_only:
        out += ["", f"Policy: {label}", "  Matching identities"]
        out += [_identity_row(i, sha1, lbl, err) for i, (sha1, lbl, err) in enumerate(rows, 1)]
        out += [f"     {len(rows)} identities found", "", "  Valid identities only"]
    valid = [(sha1, lbl) for sha1, lbl, err in rows if err is None]
    out += [_identity_row(i, sha1, lbl, None) for i, (sha1, lbl) in enumerate(valid, 1)]
    out.append(f"     {len(valid)} valid identities found")
    ctx.out("\n".join(out) + "\n")


def _identity_row(n: int, sha1: str, label: str, error: str | None) -> str:
    suffix = f" ({error})" if error else ""
    return f'{n:3d}) {sha1} "{label or "<unknown>"}"{suffix}'


def _matches_name(item: CertItem, name: str) -> bool:
    cn = cert_common_name(item.x509())
    return cn is not None and name.lower() in cn.lower()


def find_certificate(ctx: Ctx, argv: list[str]) -> int:
    """find-certificate [-a] [-c name] [-e email] [-m] [-p] [-Z] [keychain...]."""
    find_all = print_email = pem = print_hash = False
    name: str | None = None
    email: str | None = None
    opts, rest = getopt(ctx, argv, "hac:e:mpZ")
    for ch, arg in opts:
        if ch == "a":
            find_all = True
        elif ch == "c":
            name = arg
        elif ch == "e":
            email = arg
        elif ch == "m":
            print_email = True
        elif ch == "p":
            pem = True
        elif ch == "Z":
            print_hash = True
        else:
            return SHOW_USAGE
    try:
        keychains = ctx.search_list(rest)
    except KeychainNotFound:
        ctx.sec_perror("SecKeychainSearchCreateFromAttributes", ERR_NO_SUCH_KEYCHAIN)
        return ERR_NO_SUCH_KEYCHAIN
    found: list[tuple[Keychain, CertItem]] = []
    for kc in keychains:
        for item in kc.certs:
            if name is not None and not _matches_name(item, name):
                continue
            if email is not None and email.lower() not in [e.lower() for e in _emails(item)]:
                continue
            found.append((kc, item))
    if not found:
        ctx.sec_perror("SecKeychainSearchCopyNext", ERR_ITEM_NOT_FOUND)
        return ERR_ITEM_NOT_FOUND
    for _kc, item in found if find_all else found[:1]:
        if print_hash:
            ctx.out(f"SHA-256 hash: {cert_sha256(item.der)}\nSHA-1 hash: {item.sha1}\n")
        if print_email:
            ctx.out(f"email addresses: {', '.join(_emails(item))}\n")
        if pem:
            body = "\n".join(textwrap.wrap(base64.b64encode(item.der).decode(), 64))
            ctx.out(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        else:
            ctx.out(_attributes(item))
    return 0


def _emails(item: CertItem) -> list[str]:
    cert = item.x509()
    out = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    try:
        out += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.RFC822Name
        )
    except x509.ExtensionNotFound:
        pass
    return out


def _attributes(item: CertItem) -> str:
    """print_keychain_item_attributes for a certificate item (keychain_utilities.c), reduced to the attributes
    scripts read: the keychain, class, alias and label."""
    cert = item.x509()
    issuer = cert.issuer.public_bytes(serialization.Encoding.DER).hex().upper()
    subject = cert.subject.public_bytes(serialization.Encoding.DER).hex().upper()
    serial = format(cert.serial_number, "X")
    serial = ("0" if len(serial) % 2 else "") + serial
    return (
        'keychain: "/Library/Keychains/System.keychain"\n'
        "version: 512\n"
        "class: 0x80001000 \n"
        "attributes:\n"
        f'    "alis"<blob>="{item.label}"\n'
        '    "cenc"<uint32>=0x00000003 \n'
        '    "ctyp"<uint32>=0x00000001 \n'
        f'    "issu"<blob>=0x{issuer}\n'
        f'    "labl"<blob>="{item.label}"\n'
        f'    "snbr"<blob>=0x{serial}\n'
        f'    "subj"<blob>=0x{subject}\n'
    )


def delete_certificate(ctx: Ctx, argv: list[str]) -> int:
    return _delete_common(ctx, argv, identity=False)


def delete_identity(ctx: Ctx, argv: list[str]) -> int:
    return _delete_common(ctx, argv, identity=True)


def _delete_common(ctx: Ctx, argv: list[str], identity: bool) -> int:
    """delete-certificate / delete-identity [-c name | -Z hash] [-t] [keychain...] (keychain_delete.c)."""
    name: str | None = None
    digest: str | None = None
    delete_trust = False
    opts, rest = getopt(ctx, argv, "hc:Z:t")
    for ch, arg in opts:
        if ch == "c":
            name = arg
        elif ch == "Z":
            digest = arg
        elif ch == "t":
            delete_trust = True
        else:
            return SHOW_USAGE
    if name is None and digest is None:
        return SHOW_USAGE
    try:
        keychains = ctx.search_list(rest)
    except KeychainNotFound:
        keychains = []
    match = _find_unique(ctx, keychains, name, digest)
    if match is None:
        ctx.err(f'Unable to delete certificate matching "{name if name is not None else digest}"')
        return 1
    kc, item = match
    if not ctx.can_write_system_keychain():
        ctx.sec_perror("SecKeychainItemDelete", ERR_WR_PERM)
        return ERR_WR_PERM
    if delete_trust:
        # keychain_delete.c do_delete_certificate: user-domain trust, then (as root) admin-domain trust; a
        # missing setting is no error; any other failure is printed, and the certificate is then NOT
        # deleted (the command fails as a whole). On macOS 11+ removing admin trust needs the same
        # confirmation as adding it (Big Sur release notes), so over SSH it is refused (or waits on a dialog)
        result = 0
        domains = ["user", "admin"] if ctx.is_root else ["user"]
        for domain in domains:
            if kc.trust_for(item.sha1, (domain,)) is None:
                continue
            if trust_change_refused(ctx, domain):
                api = f"SecTrustSettingsRemoveTrustSettings ({domain})"
                ctx.sec_perror(api, ERR_AUTH_INTERACTION_NOT_ALLOWED)
                result = ERR_AUTH_INTERACTION_NOT_ALLOWED
                continue
            kc.remove_trust(item.sha1, domain)
        if result:
            return result
    if identity:
        key = kc.key_for(item.x509())
        if key is not None:
            kc.delete_key(key.key_hash)
    kc.delete_certificate(item.sha1)
    return 0


def _find_unique(
    ctx: Ctx, keychains: list[Keychain], name: str | None, digest: str | None
) -> tuple[Keychain, CertItem] | None:
    """find_unique_certificate: by hash (exact) or by common-name substring, preferring an exact name; an
    ambiguous name matches nothing."""
    best: tuple[Keychain, CertItem] | None = None
    best_exact = False
    for kc in keychains:
        for item in kc.certs:
            if digest is not None:
                h = digest.upper()
                if (len(h) == 40 and item.sha1 == h) or (len(h) == 64 and cert_sha256(item.der) == h):
                    return kc, item
                continue
            assert name is not None
            cn = cert_common_name(item.x509())
            if cn is None or name.lower() not in cn.lower():
                continue
            exact = cn.lower() == name.lower()
            if best is not None:
                if best_exact and not exact:
                    continue
                if best_exact == exact and best[1].sha1 != item.sha1:
                    ctx.sec_error(f'"{name}" is ambiguous, matches more than one certificate')
                    return None
            best, best_exact = (kc, item), exact
    return best
