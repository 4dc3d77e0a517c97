"""An unsigned configuration profile (.mobileconfig) that installs CA certificates as trusted.

For Macs where `security add-trusted-cert -d` is refused over SSH (macOS 11+: "no user interaction was
possible"), an MDM or the operator installs this profile instead. Payload types per Apple's Device Management
reference: `com.apple.security.root` (CertificateRoot) for self-signed roots and `com.apple.security.pkcs1`
(CertificatePKCS1, DER) for intermediates; PayloadContent is the DER certificate as plist data.
"""

from __future__ import annotations

import plistlib
import uuid
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from orchestrator.certs.x509info import describe, to_der

PROFILE_IDENTIFIER = "com.macfleet.ca-trust"
# A fixed namespace so the same certificates always give the same UUIDs: re-installing the profile
# replaces it instead of adding a second one.
_NAMESPACE = uuid.UUID("6f1c5d0e-2b7a-4c8e-9a55-1e0c10e00000")


def _payload(cert: x509.Certificate) -> dict[str, Any]:
    facts = describe(cert)
    name = facts.subject_cn or facts.subject
    kind = "root" if facts.self_signed else "pkcs1"
    return {
        "PayloadType": f"com.apple.security.{kind}",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{PROFILE_IDENTIFIER}.{kind}.{facts.sha256[:16].lower()}",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"{kind}:{facts.sha256}")).upper(),
        "PayloadDisplayName": name,
        "PayloadDescription": f"CA certificate {facts.subject} (SHA-256 {facts.sha256})",
        "PayloadCertificateFileName": f"{facts.sha256[:16].lower()}.cer",
        "PayloadContent": to_der(cert),
    }


def build_profile(
    certs: Sequence[x509.Certificate],
    display_name: str = "macfleet CA trust",
    organization: str = "macfleet",
) -> bytes:
    """The XML plist of a Configuration profile with one payload per certificate (roots first).

    Deterministic for the same set of certificates. Raises ValueError when certs is empty.
    """
    if not certs:
        raise ValueError("no CA certificates to put in the profile; add some with `orchestrate certs ca add`")
    unique = {describe(c).sha256: c for c in certs}
    ordered = sorted(unique.items(), key=lambda kv: (not describe(kv[1]).self_signed, kv[0]))
    payloads = [_payload(c) for _, c in ordered]
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": PROFILE_IDENTIFIER,
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, "profile:" + ",".join(k for k, _ in ordered))).upper(),
        "PayloadDisplayName": display_name,
        "PayloadDescription": "Trusts the CA certificates the 1E Client and its Switch need.",
        "PayloadOrganization": organization,
        "PayloadScope": "System",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": payloads,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)
