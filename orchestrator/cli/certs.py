"""`orchestrate certs`: CA certificates, devices' client PFX files, the fleet check, the CA profile and
lab issuing. Thin adapters over `orchestrator.certs`.

Exit codes: 2 for bad input (unreadable file, a PFX that is damaged or does not open with the password, bad
option, missing secret key), 1 when something was refused or a device's certificate is not usable.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from inventory.userfiles import PASSWORD, PFX, UserFileError, read_user_file
from orchestrator import audit
from orchestrator.certs import lab, store
from orchestrator.certs.issue import IssueError
from orchestrator.certs.pfx import PfxError
from orchestrator.certs.profile import build_profile
from orchestrator.certs.x509info import CertificateLoadError
from orchestrator.cli import context
from orchestrator.cli.certs_ca import ca_app
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import GroupOpt, JsonOpt, LimitOpt, targets
from orchestrator.console import Console
from orchestrator.secrets import SecretBox, SecretError
from orchestrator.state.db import session_scope
from orchestrator.state.models import utcnow

app = typer.Typer(no_args_is_help=True, help="Certificates: CAs, devices' client PFX files, checks, profile.")
app.add_typer(ca_app, name="ca")


WarnDaysOpt = Annotated[
    int, typer.Option("--warn-days", min=0, help="Warn when a certificate expires within this many days.")
]


def _day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d")


@contextmanager
def _errors(console: Console) -> Iterator[None]:
    """Bad input → message and exit 2; refusals of the store → message and exit 1."""
    try:
        yield
    except (CertificateLoadError, IssueError, SecretError, OSError, UserFileError, PfxError) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (store.CertStoreError, ValueError) as e:
        console.error(str(e))
        raise typer.Exit(EXIT_FAILED) from None


def _audit(action: str, params: dict[str, Any], outcome: str = "ok") -> None:
    with session_scope(context.engine()) as s:
        audit.record(s, context.settings().actor, action, params, outcome)


def _vault(console: Console) -> store.BoxVault:
    """The secret store with the operator's key; exit 2 with the secrets module's message without one."""
    try:
        box = SecretBox.from_settings(context.settings())
    except SecretError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    return store.BoxVault(box)


# ---------------------------------------------------------------- client PFX


def _read_password(
    console: Console, password_file: Path | None, password_env: str | None, prompt: bool
) -> tuple[bytes, str]:
    """The PFX password and where it came from ("file", "env", "prompt"). Exit 2 unless exactly one source."""
    given = [x for x in (password_file is not None, password_env is not None, prompt) if x]
    if len(given) != 1:
        console.error(
            "give the PFX password with exactly one of --password-file F, --password-env VAR, --prompt"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if password_file is not None:
        try:
            raw = read_user_file(password_file, PASSWORD)
        except UserFileError as e:
            console.error(str(e))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        # one trailing newline is the file's, not the password's
        return raw.removesuffix(b"\n").removesuffix(b"\r"), "file"
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            console.error(f"environment variable {password_env} is not set")
            raise typer.Exit(EXIT_BAD_INPUT)
        return value.encode("utf-8"), "env"
    return getpass.getpass("PFX password: ").encode("utf-8"), "prompt"


@app.command("add")
def add(
    files: Annotated[list[Path], typer.Argument(help="PKCS#12 files (.pfx/.p12), one per device.")],
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="A file holding the PFX password (one line).")
    ] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="An environment variable holding the PFX password.")
    ] = None,
    prompt: Annotated[bool, typer.Option("--prompt", help="Ask for the PFX password.")] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="Map the PFX to this device (its name is still checked).")
    ] = None,
    warn_days: WarnDaysOpt = 30,
    json_out: JsonOpt = False,
) -> None:
    """Open each PFX for real, map it to its device by host name, check it, and store it encrypted."""
    console = Console(json_mode=json_out)
    password, source = _read_password(console, password_file, password_env, prompt)
    vault = _vault(console)
    now = utcnow()
    results: list[dict[str, Any]] = []
    problems = bad_input = 0
    for path in files:
        entry: dict[str, Any] = {"file": str(path), "stored": False}
        try:
            data = read_user_file(path, PFX)
            with session_scope(context.engine()) as s:
                r = store.import_pfx(
                    s, vault, data, password, str(path), now=now, warn_days=warn_days, device_name=device,
                    rule=context.settings().certs.name_rule,
                )  # fmt: skip
                entry.update(_import_json(r))
                _record_import(s, path, r, source, password_file, password_env)
        except (PfxError, store.CertStoreError, UserFileError, OSError) as e:
            msg = str(e) if not isinstance(e, OSError) else f"{path}: {e.strerror}"
            entry["error"] = msg
            problems += 1
            # a file that is not a PFX we can open (or read) is bad input; a refusal of the store is not
            bad_input += isinstance(e, PfxError | UserFileError | OSError)
            console.error(msg)
            _audit(
                "certs.add",
                {"file": str(path), "pw_source": source, "device": device, "error": type(e).__name__},
                "error",
            )
            results.append(entry)
            continue
        results.append(entry)
        if not r.verdict.usable:
            problems += 1
        _show_import(console, r)
    if json_out:
        console.json(results)
    if bad_input:
        raise typer.Exit(EXIT_BAD_INPUT)
    if problems:
        raise typer.Exit(EXIT_FAILED)


def _import_json(r: store.PfxImport) -> dict[str, Any]:
    return {
        "stored": True,
        "unchanged": r.unchanged,
        "device": r.device.name,
        "expected_hostname": r.verdict.expected_hostname,
        "certificate_id": r.row.id,
        "subject": r.row.subject,
        "sha1": r.row.sha1,
        "sha256": r.row.sha256,
        "not_after": r.row.not_after.isoformat(),
        "verdict": r.verdict.to_json(),
        "algorithms": r.algorithms.to_json() if r.algorithms else None,
        "chain_known": r.chain_known,
        "chain_unknown": [{"subject": c.subject, "sha256": c.sha256} for c in r.chain_unknown],
    }


def _record_import(
    s: Session,
    path: Path,
    r: store.PfxImport,
    source: str,
    password_file: Path | None,
    password_env: str | None,
) -> None:
    params: dict[str, Any] = {
        "file": str(path),
        "device": r.device.name,
        "certificate_id": r.row.id,
        "sha1": r.row.sha1,
        "status": str(r.verdict.status),
        "pw_source": source,
        "password_file": str(password_file) if password_file else None,
        "password_env": password_env,
    }
    audit.record(s, context.settings().actor, "certs.add", params, "ok" if r.verdict.usable else "warning")


def _show_import(console: Console, r: store.PfxImport) -> None:
    v = r.verdict
    head = f"{r.source} → {r.device.name} ({r.row.subject}, valid until {_day(r.row.not_after)})"
    if r.unchanged:
        head += ", already stored"
    if v.usable:
        console.success(f"{head}: {v.status}")
        if str(v.status) != "ok":
            console.warning(f"{r.device.name}: {v.reason}")
    else:
        console.info(f"stored {head}")
        console.error(f"{r.device.name}: {v.status}: {v.reason}")
    for f in v.findings[1:]:
        console.warning(f"{r.device.name}: also {f.status}: {f.reason}")
    for c in r.chain_unknown:
        console.warning(
            f"{r.source} carries CA {c.subject!r} (SHA-256 {c.sha256}) that is not a known CA; "
            "register it with `orchestrate certs ca add` if you trust it"
        )
    if r.algorithms is not None and not r.algorithms.macos_compatible:
        console.info(
            f"  note: {r.source} uses {', '.join(r.algorithms.key_ciphers)} / MAC {r.algorithms.mac}, "
            "which macOS refuses; it is re-wrapped with 3DES + SHA-1 when sent to the Mac"
        )


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include replaced (inactive) certificates.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the devices' client certificates."""
    console = Console(json_mode=json_out)
    with session_scope(context.engine()) as s:
        rows = store.list_client_certs(s, include_inactive=all_)
        audit.record(s, context.settings().actor, "certs.list", {"all": all_, "count": len(rows)})
    data: list[dict[str, Any]] = [
        {
            "id": c.id,
            "device": d.name,
            "subject": c.subject,
            "issuer": c.issuer,
            "not_before": c.not_before.isoformat(),
            "not_after": c.not_after.isoformat(),
            "sha1": c.sha1,
            "sha256": c.sha256,
            "active": c.active,
            "added_at": c.added_at.isoformat(),
        }
        for c, d in rows
    ]
    if json_out:
        console.json(data)
        return
    if not data:
        console.info("no client certificates (add PFX files with `orchestrate certs add`)")
        return
    console.table(
        f"{len(data)} client certificate{'s' if len(data) != 1 else ''}",
        ["device", "subject", "not after", "SHA-1", "active"],
        [
            [d["device"], d["subject"], d["not_after"][:10], d["sha1"], "yes" if d["active"] else "no"]
            for d in data
        ],
    )


@app.command("check")
def check(
    group: GroupOpt = None,
    limit: LimitOpt = None,
    warn_days: WarnDaysOpt = 30,
    json_out: JsonOpt = False,
) -> None:
    """Check each device's certificate against its host name and the known CAs.

    One row a device: ok / no certificate / name mismatch / expired / not yet valid / expiring / wrong usage /
    chain incomplete / CA unknown, with the reason. Exits 1 when any device's certificate is not usable
    (expiring soon is a warning, not a failure).
    """
    from orchestrator import inventory_store

    console = Console(json_mode=json_out)
    groups, limits = targets(group, limit)
    vault = _vault(console)
    now = utcnow()
    with _errors(console), session_scope(context.engine()) as s:
        devices = inventory_store.resolve_targets(s, groups, limits)
        checks = store.check_devices(s, vault, devices, now, warn_days, context.settings().certs.name_rule)
        data = [
            {
                "device": c.device.name,
                "hostname": c.verdict.expected_hostname,
                "certificate_id": c.cert.id if c.cert else None,
                "sha1": c.cert.sha1 if c.cert else None,
                "not_after": c.cert.not_after.isoformat() if c.cert else None,
                **c.verdict.to_json(),
            }
            for c in checks
        ]
        bad = [c.device.name for c in checks if not c.verdict.usable]
        audit.record(
            s,
            context.settings().actor,
            "certs.check",
            {
                "groups": groups,
                "limits": limits,
                "devices": len(checks),
                "not_ok": bad,
                "warn_days": warn_days,
            },
            "ok" if not bad else "failed",
        )
    if json_out:
        console.json(data)
    elif not data:
        console.info("no devices selected")
    else:
        console.table(
            f"certificates of {len(data)} device{'s' if len(data) != 1 else ''}",
            ["device", "host name", "status", "reason", "not after"],
            [
                [d["device"], d["hostname"], d["status"], d["reason"], (d["not_after"] or "")[:10]]
                for d in data
            ],
        )
    if bad:
        if not json_out:
            console.error(f"{len(bad)} device(s) without a usable certificate: {', '.join(bad)}")
        raise typer.Exit(EXIT_FAILED)


@app.command("profile")
def profile(
    out: Annotated[Path, typer.Option("--out", help="Where to write the .mobileconfig.")],
    ca: Annotated[
        list[str] | None,
        typer.Option("--ca", help="SHA-256 (or 8+ character prefix) of a known CA; default: all."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a configuration profile (.mobileconfig) that trusts the known CAs.

    Unsigned; install it by MDM or by hand on Macs where `security add-trusted-cert` is refused over SSH.
    """
    console = Console(json_mode=json_out)
    with _errors(console):
        with session_scope(context.engine()) as s:
            certs = store.ca_certificates(s, ca or ())
        data = build_profile(certs)
        out.write_bytes(data)
    _audit("certs.profile", {"out": str(out), "ca": ca or "all", "certificates": len(certs)})
    if json_out:
        console.json({"out": str(out), "certificates": len(certs)})
    else:
        console.success(f"wrote {out} with {len(certs)} CA certificate(s)")


@app.command("issue")
def issue(
    ca_cert: Annotated[Path, typer.Option("--ca-cert", help="The lab CA certificate (PEM or DER).")],
    ca_key: Annotated[
        Path, typer.Option("--ca-key", help="The lab CA's private key (unencrypted PEM or DER).")
    ],
    group: GroupOpt = None,
    limit: LimitOpt = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity of the issued certificates.")] = 397,
    out: Annotated[Path | None, typer.Option("--out", help="Also write <device>.pfx files here.")] = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="PFX password for the written files (default: random)."),
    ] = None,
    no_import: Annotated[
        bool, typer.Option("--no-import", help="Only write the files; do not store them.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Lab only: issue a client PFX per device from a lab CA, and store it.

    CN = SAN DNS = the device's host name, EKU clientAuth, KU digitalSignature + keyEncipherment, the CA
    certificate included; protected with the legacy algorithms macOS imports.
    """
    console = Console(json_mode=json_out)
    if no_import and out is None:
        console.error("--no-import needs --out (otherwise nothing would be kept)")
        raise typer.Exit(EXIT_BAD_INPUT)
    if no_import and password_file is None:
        console.error("--no-import needs --password-file (a random password would be lost)")
        raise typer.Exit(EXIT_BAD_INPUT)
    groups, limits = targets(group, limit)
    settings = context.settings()
    with _errors(console):
        ca = lab.load_lab_ca(ca_cert, ca_key)
        password = lab.read_password_file(password_file) if password_file is not None else None
        vault = None if no_import else _vault(console)
        issued = lab.issue_for_targets(
            context.engine(), ca, groups, limits, days=days, now=utcnow(), rule=settings.certs.name_rule,
            actor=settings.actor, out=out, password=password, vault=vault,
        )  # fmt: skip
    if json_out:
        console.json([
            {"device": i.device, "hostname": i.hostname, **({"file": str(i.file)} if i.file else {}),
             **(_import_json(i.stored) if i.stored else {})}
            for i in issued
        ])  # fmt: skip
        return
    for i in issued:
        where = f" → {i.file}" if i.file else ""
        stored = ", stored" if i.stored else ""
        console.success(f"{i.device}: CN={i.hostname}{where}{stored}")
    if not issued:
        console.info("no devices selected")
