"""`security add-trusted-cert`, `remove-trusted-cert`, `dump-trust-settings` and `verify-cert`.

Source: Apple's SecurityTool trusted_cert_add.c, trusted_cert_dump.c, verify_cert.c and trusted_cert_utils.c
(apple-open-source/macos, Security/SecurityTool/macOS/). One certificate per call: readCertFile decodes only
the first PEM block of a bundle (cuPem.cpp pemDecode). With -k the certificate is added to that keychain
BEFORE the trust settings are written, so a refused trust still leaves the certificate there.

Since macOS 11 a trust-settings change needs an administrator's confirmation even for root (Apple's Big Sur
release notes, quoted at twocanoes.com "Trusting Certificates in System Keychain without Prompting"); over SSH
nobody can confirm, so SecTrustSettingsSetTrustSettings fails with errAuthorizationInteractionNotAllowed. We
refuse: the user domain always, the admin domain (-d) for non-root callers and for root when the host's
`faults.trust_refused` knob is set.

Trust left by an MDM profile (domain "profile") is listed by `dump-trust-settings -d` as well: MDM-installed
roots are admin-domain trust settings on macOS (fleetdm/fleet#19538 — a customer exports and edits the trust
settings of MDM-pushed roots with the security CLI); `verify-cert` accepts it in any case.
"""

from __future__ import annotations

import datetime

from cryptography import x509

from macsim.keychain import TRUST_RESULTS, TrustSetting, cert_der, cert_label, cert_sha1, is_self_signed
from macsim.tools.security_common import (
    ERR_AUTH_INTERACTION_NOT_ALLOWED,
    ERR_ITEM_NOT_FOUND,
    ERR_NO_SUCH_KEYCHAIN,
    ERR_NO_TRUST_SETTINGS,
    ERR_PARAM,
    ERR_WR_PERM,
    SHOW_USAGE,
    Ctx,
    DialogWait,
    KeychainNotFound,
    getopt,
    read_cert_file,
)

# add-trusted-cert -p values (trusted_cert_utils.c policyStringToOid) and their names in dumps.
TRUST_POLICIES = {
    "ssl": "SSL",
    "smime": "SMIME",
    "codeSign": "Code Signing",
    "IPSec": "IPSec",
    "basic": "Apple X509 Basic",
    "swUpdate": "SW Update Signing",
    "pkgSign": "Package Signing",
    "eap": "EAP",
    "macappstore": "Mac App Store",
    "appleID": "AppleID Sharing",
    "timestamping": "Timestamping",
}
RESULT_NAMES = {
    "trustRoot": "kSecTrustSettingsResultTrustRoot",
    "trustAsRoot": "kSecTrustSettingsResultTrustAsRoot",
    "deny": "kSecTrustSettingsResultDeny",
    "unspecified": "kSecTrustSettingsResultUnspecified",
}


def trust_change_refused(ctx: Ctx, domain: str) -> bool:
    if ctx.p.mac.spec.faults.trust_dialog:
        # mkcert#305 ("security add-trusted-cert now shows a permission box even if run with sudo"),
        # munki#1003 ("will not run before the password has been entered or aborted")
        raise DialogWait()
    if domain == "user":
        return True
    return not ctx.is_root or ctx.p.mac.spec.faults.trust_refused


def add_certificates(ctx: Ctx, argv: list[str]) -> int:
    """add-certificates [-k keychain] file... (keychain_add.c keychain_add_certificates, do_add_certificates):
    each file read like add-trusted-cert's (readCertFile), added with SecCertificateAddToKeychain; no trust
    setting is written. A certificate already there: "security: FILE: already in KEYCHAIN", status 1; the
    other files are still added."""
    opts, rest = getopt(ctx, argv, "hk:")
    kc_name: str | None = None
    for ch, arg in opts:
        if ch == "k" and arg:
            kc_name = arg
        else:
            return SHOW_USAGE
    if not rest:
        return SHOW_USAGE
    if kc_name is None:
        ctx.sec_error("add-certificates: the default keychain is not emulated by macsim; give -k")
        return 1
    try:
        keychain = ctx.open_keychain(kc_name)
    except KeychainNotFound:
        keychain = None
    result = 0
    for path in rest:
        cert = read_cert_file(ctx, path)
        if cert is None:
            result = 1
            continue
        if keychain is None:
            ctx.sec_perror("SecCertificateAddToKeychain", ERR_NO_SUCH_KEYCHAIN)
            result = 1
        elif not ctx.can_write_system_keychain():
            ctx.sec_perror("SecCertificateAddToKeychain", ERR_WR_PERM)
            result = 1
        elif not keychain.add_certificate(cert):
            ctx.sec_error(f"{path}: already in {kc_name}")
            result = 1
    return result


def trusted_cert_add(ctx: Ctx, argv: list[str]) -> int:
    """add-trusted-cert [-d] [-r result] [-p policy]... [-a app] [-s str] [-e err] [-u use] [-k kc]
    [-i f -o f] certFile."""
    if len(argv) < 2:
        return SHOW_USAGE
    domain = "user"
    result = "trustRoot"
    policies: list[str] = []
    constrained = False
    kc_name: str | None = None
    settings_in: str | None = None
    settings_out: str | None = None
    opts, rest = getopt(ctx, argv, "dr:a:p:s:e:u:k:i:o:h")
    for ch, arg in opts:
        if ch == "d":
            domain = "admin"
        elif ch == "r":
            if arg not in TRUST_RESULTS:
                return SHOW_USAGE
            result = arg
            constrained = True
        elif ch == "p":
            if arg not in TRUST_POLICIES:
                ctx.err(f"***unknown policy spec ({arg})\n")
                return SHOW_USAGE
            policies.append(arg)
            constrained = True
        elif ch in ("a", "s", "e", "u"):
            constrained = True  # accepted; these constraints are not modelled further
        elif ch == "k":
            kc_name = arg
        elif ch == "i":
            settings_in = arg
        elif ch == "o":
            settings_out = arg
        else:
            return SHOW_USAGE
    if len(rest) > 1:
        return SHOW_USAGE
    cert_file = rest[0] if rest else None
    if cert_file is None and settings_out is None:
        ctx.err("No cert file specified.\n")
        return SHOW_USAGE
    if settings_out is not None and domain != "user":
        ctx.err("Can't specify both domain and a settingsFile\n")
        return SHOW_USAGE
    if settings_in is not None and settings_out is None:
        ctx.err("Can't specify settingsFileIn and no settingsFileOut\n")
        return SHOW_USAGE
    if settings_out is not None:
        ctx.sec_error("add-trusted-cert: trust settings files (-i/-o) are not emulated by macsim")
        return 1
    keychain = None
    if kc_name is not None:
        try:
            keychain = ctx.open_keychain(kc_name)
        except KeychainNotFound:
            ctx.cssm_perror("SecCertificateAddToKeychain", ERR_NO_SUCH_KEYCHAIN)
            return 1
    assert cert_file is not None
    cert = read_cert_file(ctx, cert_file)
    if cert is None:
        ctx.err(f"Error reading file {cert_file}\n")
        return 1
    if keychain is not None:
        if not ctx.can_write_system_keychain():
            ctx.cssm_perror("SecCertificateAddToKeychain", ERR_WR_PERM)
            return 1
        keychain.add_certificate(cert)  # a duplicate is fine
    if trust_change_refused(ctx, domain):
        ctx.cssm_perror("SecTrustSettingsSetTrustSettings", ERR_AUTH_INTERACTION_NOT_ALLOWED)
        return 1
    if result == "trustRoot" and not is_self_signed(cert):
        # kSecTrustSettingsResultTrustRoot is only valid on a root (self-signed) certificate.
        ctx.cssm_perror("SecTrustSettingsSetTrustSettings", ERR_PARAM)
        return 1
    ctx.p.mac.keychain.set_trust(
        TrustSetting(
            sha1=cert_sha1(cert_der(cert)),
            result=result,
            domain=domain,
            policies=policies,
            constrained=constrained,
            label=cert_label(cert),
        )
    )
    return 0


def trusted_cert_remove(ctx: Ctx, argv: list[str]) -> int:
    """remove-trusted-cert [-d] certFile."""
    domain = "user"
    opts, rest = getopt(ctx, argv, "dh")
    for ch, _arg in opts:
        if ch == "d":
            domain = "admin"
        else:
            return SHOW_USAGE
    if len(rest) > 1:
        return SHOW_USAGE
    if not rest:
        ctx.err("No cert file specified.\n")
        return SHOW_USAGE
    cert = read_cert_file(ctx, rest[0])
    if cert is None:
        ctx.err(f"Error reading file {rest[0]}\n")
        return 1
    if trust_change_refused(ctx, domain):
        ctx.cssm_perror("SecTrustSettingsRemoveTrustSettings", ERR_AUTH_INTERACTION_NOT_ALLOWED)
        return 1
    if not ctx.p.mac.keychain.remove_trust(cert_sha1(cert_der(cert)), domain):
        ctx.cssm_perror("SecTrustSettingsRemoveTrustSettings", ERR_ITEM_NOT_FOUND)
        return 1
    return 0


def trusted_cert_dump(ctx: Ctx, argv: list[str]) -> int:
    """dump-trust-settings [-s] [-d]: the layout of trusted_cert_dump.c."""
    domain = "user"
    opts, rest = getopt(ctx, argv, "sdh")
    for ch, _arg in opts:
        if ch == "s":
            domain = "system"
        elif ch == "d":
            domain = "admin"
        else:
            return SHOW_USAGE
    if rest:
        return SHOW_USAGE
    kc = ctx.p.mac.keychain
    if domain == "system":
        settings: list[TrustSetting] = []  # Apple's built-in roots are not modelled
    elif domain == "admin":
        settings = kc.trust_in("admin") + [
            t for t in kc.trust_in("profile") if kc.trust_for(t.sha1, ("admin",)) is None
        ]
    else:
        settings = kc.trust_in("user")
    if not settings:
        ctx.cssm_perror("SecTrustSettingsCopyCertificates", ERR_NO_TRUST_SETTINGS)
        return 1
    lines = [f"Number of trusted certs = {len(settings)}"]
    for i, t in enumerate(settings):
        lines.append(f"Cert {i}: {t.label or t.sha1}")
        entries = _trust_entries(t)
        lines.append(f"   Number of trust settings : {len(entries)}")
        for j, entry in enumerate(entries):
            lines.append(f"   Trust Setting {j}:")
            lines.extend(f"      {e}" for e in entry)
    ctx.out("\n".join(lines) + "\n")
    return 0


def _trust_entries(t: TrustSetting) -> list[list[str]]:
    """The usage-constraint dictionaries add-trusted-cert wrote: none for plain "always trust", else one per
    policy (or one without a policy); the result type is only stored when it is not trustRoot."""
    if not t.constrained:
        return []
    result = [] if t.result == "trustRoot" else [f"Result Type           : {RESULT_NAMES[t.result]}"]
    if not t.policies:
        return [result]
    return [[f"Policy OID            : {TRUST_POLICIES[p]}", *result] for p in t.policies]


VERIFY_POLICIES = (
    "basic",
    "ssl",
    "smime",
    "codeSign",
    "IPSec",
    "swUpdate",
    "pkgSign",
    "eap",
    "appleID",
    "macappstore",
    "timestamping",
)


def verify_cert(ctx: Ctx, argv: list[str]) -> int:
    """verify-cert [-c certFile]... [-r rootCertFile]... [-p policy] [-C] [-d date] [-k keychain]... [-n name]
    [-N] [-L] [-l] [-e email] [-s host] [-q] [-R opt] [-P] [-t] [-v].

    Messages as verify_cert.c prints them."""
    if len(argv) < 2:
        return SHOW_USAGE
    certs: list[x509.Certificate] = []
    roots: list[x509.Certificate] | None = None
    policy = "basic"
    client = False
    quiet = False
    name: str | None = None
    no_keychains = False
    when: datetime.datetime | None = None
    i = 1
    opts, rest = getopt(ctx, argv, "Cc:r:p:k:e:s:d:LlNnPqR:tv")
    for ch, arg in opts:
        if ch == "C":
            client = True
        elif ch in ("c", "r"):
            cert = read_cert_file(ctx, arg)
            if cert is None:
                return 1
            if ch == "c":
                certs.append(cert)
            else:
                roots = [*(roots or []), cert]
        elif ch == "p":
            if arg not in VERIFY_POLICIES:
                ctx.err(f"***unknown policy spec ({arg})\n")
                return SHOW_USAGE
            policy = arg
        elif ch == "k":
            try:
                ctx.open_keychain(arg)
            except KeychainNotFound:
                ctx.cssm_perror("SecTrustSetKeychains", ERR_NO_SUCH_KEYCHAIN)
                return 1
        elif ch in ("N", "n"):
            no_keychains = True
        elif ch in ("e", "s"):
            name = arg
        elif ch == "q":
            quiet = True
        elif ch == "d":
            when = _parse_date(arg)
            if when is None:
                ctx.err("Date processing error\n")
                return SHOW_USAGE
        # -L, -l, -R, -P, -t, -v: accepted (no network fetch, no revocation in the lab)
    del i
    if rest:
        ctx.sec_error("verify-cert: URL evaluation is not emulated by macsim")
        return 1
    if not certs:
        if roots is None:
            ctx.err("***No certs specified.\n")
            return SHOW_USAGE
        if len(roots) != 1:
            ctx.err("***Multiple roots and no certs not allowed.\n")
            return SHOW_USAGE
        certs = [roots[0]]
    eval_policy = {"ssl": "ssl-client" if client else "ssl-server", "eap": "eap-client"}.get(policy, policy)
    ev = ctx.p.mac.keychain.evaluate(
        certs[0],
        intermediates=certs[1:],
        anchors=roots,
        policy=eval_policy,
        name=name,
        now=when,
        use_keychain=not no_keychains,
    )
    if ev.denied:
        if not quiet:
            ctx.err("SecTrustEvaluate result: kSecTrustResultDeny\n")
        return 1
    if ev.error is not None:
        if not quiet:
            ctx.err(f"Cert Verify Result: {ev.error}\n")
        return 1
    if not quiet:
        ctx.out("...certificate verification successful.\n")
    return 0


def _parse_date(text: str) -> datetime.datetime | None:
    for fmt in ("%Y-%m-%d-%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    return None
