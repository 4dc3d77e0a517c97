"""`orchestrate artifact`: the 1E Client DMG registry (add, list, remove). Thin over orchestrator.artifacts.

Exit codes: 2 for bad input (unreadable, truncated or corrupt DMG, unknown artifact), 1 when refused
(version clash, in use, not confirmed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import artifacts, audit
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import JsonOpt
from orchestrator.console import Console
from orchestrator.state.db import session_scope
from orchestrator.state.models import Artifact

app = typer.Typer(no_args_is_help=True, help="1E Client disk images (DMG): add, list, remove.")


def _row(a: Artifact) -> dict[str, Any]:
    return {
        "id": a.id,
        "version": a.version,
        "sha256": a.sha256,
        "filename": a.filename,
        "size": a.size,
        "path": a.path,
        "added_at": a.added_at.isoformat(),
    }


def _fail(console: Console, action: str, params: dict[str, Any], e: Exception) -> typer.Exit:
    console.error(str(e))
    with session_scope(context.engine()) as s:
        audit.record(s, context.settings().actor, action, {**params, "error": type(e).__name__}, "error")
    bad_input = isinstance(e, artifacts.ArtifactInputError | OSError)
    return typer.Exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILED)


@app.command("add")
def add(
    dmg: Annotated[Path, typer.Argument(help="The 1E Client disk image (1e.client-macOS_v<version>.dmg).")],
    version: Annotated[
        str | None, typer.Option("--version", help="The client version (default: from the file name).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a DMG's UDIF trailer and checksum, store it content-addressed, and register its version."""
    console = Console(json_mode=json_out)
    params: dict[str, Any] = {"file": str(dmg), "version": version}
    try:
        with session_scope(context.engine()) as s:
            row, created = artifacts.add_artifact(s, context.settings().data_dir, dmg, version)
            audit.record(
                s,
                context.settings().actor,
                "artifact.add",
                {**params, "version": row.version, "sha256": row.sha256, "created": created},
            )
    except (artifacts.ArtifactError, OSError) as e:
        raise _fail(console, "artifact.add", params, e) from None
    # The controller cannot read the pkg's own version out of a real (compressed HFS+/APFS) image: say where
    # the version came from instead of implying it was checked.
    source = "--version" if version else "the file name"
    if json_out:
        console.json({**_row(row), "created": created, "version_from": source})
        return
    verb = "added" if created else "already stored"
    console.success(f"{verb}: {row.filename} as version {row.version} ({row.size} bytes)")
    console.info(f"  version: from {source} (the package inside the image is not read here)")
    console.info(f"  SHA-256: {row.sha256}")
    console.info(f"  stored:  {row.path}")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List the stored DMGs, oldest version first."""
    console = Console(json_mode=json_out)
    with session_scope(context.engine()) as s:
        rows = [_row(a) for a in artifacts.list_artifacts(s)]
        audit.record(s, context.settings().actor, "artifact.list", {"count": len(rows)})
    if json_out:
        console.json(rows)
        return
    if not rows:
        console.info("no artifacts (add a DMG with `orchestrate artifact add FILE`)")
        return
    console.table(
        f"{len(rows)} artifact{'s' if len(rows) != 1 else ''}",
        ["version", "file", "size", "SHA-256", "added"],
        [[r["version"], r["filename"], r["size"], r["sha256"], r["added_at"][:19]] for r in rows],
    )


@app.command("remove")
def remove(
    ref: Annotated[str, typer.Argument(help="Version, or SHA-256 (or 8+ character prefix), or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove a DMG (its record and stored file); refused while a pending or running run uses it."""
    console = Console(json_mode=json_out)
    params: dict[str, Any] = {"ref": ref}
    try:
        with session_scope(context.engine()) as s:
            art = artifacts.find_artifact(s, ref)
            if not yes and not typer.confirm(
                f"Remove version {art.version} ({art.filename})?", default=False
            ):
                console.error("aborted; nothing removed")
                raise typer.Exit(EXIT_FAILED)
            removed = artifacts.remove_artifact(s, art.id)
            audit.record(
                s,
                context.settings().actor,
                "artifact.remove",
                {**params, "version": removed.version, "sha256": removed.sha256},
            )
    except artifacts.ArtifactError as e:
        raise _fail(console, "artifact.remove", params, e) from None
    if json_out:
        console.json(_row(removed))
        return
    console.success(f"removed version {removed.version} ({removed.sha256})")
