"""`orchestrate certs ca add|list`: the known CA certificates (the trust anchors of client certificates).

Exit codes: 0; 2 when a file is not a certificate we can read (the others are still added).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from inventory.userfiles import CERTIFICATE, UserFileError, read_user_file
from orchestrator import audit
from orchestrator.certs import store
from orchestrator.certs.x509info import CertificateLoadError, load_certificates
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT
from orchestrator.cli.options import JsonOpt
from orchestrator.console import Console
from orchestrator.state.db import session_scope

ca_app = typer.Typer(
    no_args_is_help=True, help="Known CA certificates (the trust anchors of client certificates)."
)


@ca_app.command("add")
def ca_add(
    files: Annotated[list[Path], typer.Argument(help="PEM or DER certificates, PEM bundles, PKCS#7 files.")],
    json_out: JsonOpt = False,
) -> None:
    """Register CA certificates (bundles are split; each certificate is stored once, by SHA-256)."""
    console = Console(json_mode=json_out)
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for path in files:
        try:
            certs = load_certificates(read_user_file(path, CERTIFICATE), str(path))
        except (CertificateLoadError, UserFileError, OSError) as e:
            console.error(f"{path}: {e.strerror}" if isinstance(e, OSError) else str(e))
            failed.append(str(path))
            continue
        with session_scope(context.engine()) as s:
            added = store.add_cas(s, certs)
        for a in added:
            if not a.facts.is_ca:
                console.warning(
                    f"{path}: {a.facts.subject} is not a CA certificate (basicConstraints CA:FALSE)"
                )
            results.append({"file": str(path), "created": a.created, **a.facts.to_json()})
    with session_scope(context.engine()) as s:
        audit.record(
            s, context.settings().actor, "certs.ca.add",
            {"files": [str(f) for f in files], "sha256": [r["sha256"] for r in results], "failed": failed},
            "ok" if not failed else "partial",
        )  # fmt: skip
    if json_out:
        console.json({"certificates": results, "failed": failed})
    else:
        for r in results:
            verb = "added" if r["created"] else "already known"
            console.success(f"{verb}: {r['subject']}")
            console.info(f"  issuer:   {r['issuer']}")
            console.info(f"  valid:    {r['not_before'][:10]} → {r['not_after'][:10]}")
            console.info(f"  SHA-1:    {r['sha1']}")
            console.info(f"  SHA-256:  {r['sha256']}")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@ca_app.command("list")
def ca_list(json_out: JsonOpt = False) -> None:
    """List the known CA certificates."""
    console = Console(json_mode=json_out)
    with session_scope(context.engine()) as s:
        rows = store.list_cas(s)
        audit.record(s, context.settings().actor, "certs.ca.list", {"count": len(rows)})
    data: list[dict[str, Any]] = [
        {
            "id": r.id,
            "subject": r.subject,
            "issuer": r.issuer,
            "not_before": r.not_before.isoformat(),
            "not_after": r.not_after.isoformat(),
            "self_signed": r.is_self_signed,
            "sha1": r.sha1,
            "sha256": r.sha256,
        }
        for r in rows
    ]
    if json_out:
        console.json(data)
        return
    if not data:
        console.info("no CA certificates (add them with `orchestrate certs ca add FILE`)")
        return
    console.table(
        f"{len(data)} CA certificate{'s' if len(data) != 1 else ''}",
        ["subject", "issuer", "not after", "root", "SHA-256"],
        [
            [d["subject"], d["issuer"], d["not_after"][:10], "yes" if d["self_signed"] else "no", d["sha256"]]
            for d in data
        ],
    )
