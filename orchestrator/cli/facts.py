"""`orchestrate facts HOST [--capture DIR]`: what one Mac reports about itself, read-only.

Without --capture: the parsed facts (a table, or --json). With --capture DIR: every read-only probe the
workflows use, redacted (orchestrator.capture), written as parser fixtures DIR/<probe>/<case>.json to
check with `MACFLEET_REAL_FIXTURES=DIR pytest tests/tasks/test_real_fixtures.py` and to contribute.
Exit codes: 0 done; 1 the Mac could not be probed, or (capture) a probe's output did not parse; 2 bad input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.capture import redaction_for, write_fixtures
from orchestrator.cli import context
from orchestrator.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED
from orchestrator.cli.options import JsonOpt
from orchestrator.cli.remote import Capture, CaptureError, NoSuchDevice, capture_device
from orchestrator.console import Console
from tasks.facts import FactsError, parse_client_facts, parse_sw_vers, parse_uname_m


def _case(c: Capture) -> str:
    """`macos-14.5-arm64` from the capture's own sw_vers and uname -m."""
    try:
        name = f"macos-{parse_sw_vers(c.outputs['sw_vers'])}-{parse_uname_m(c.outputs['arch'])}"
    except (FactsError, KeyError):
        name = "macos-unknown"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in doc.items():
        if isinstance(value, list) and value:
            rows += [(key if i == 0 else "", str(v)) for i, v in enumerate(value)]
        elif isinstance(value, dict) and value:
            rows += [(key if i == 0 else "", f"{k}={v}") for i, (k, v) in enumerate(value.items())]
        else:
            rows.append((key, "" if value is None else str(value)))
    return rows


def facts(
    host: Annotated[str, typer.Argument(help="The device (inventory name).")],
    capture_dir: Annotated[
        Path | None,
        typer.Option("--capture", help="Write every probe's redacted output as parser fixtures under DIR."),
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Fixture file name (default macos-<version>-<arch>).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Probe one Mac read-only: print its parsed facts, or capture its probes' output as fixtures."""
    console = Console(json_mode=json_out)
    if case is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", case):
        console.error(f"--case {case!r}: use letters, digits, '.', '_' or '-'")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        got = capture_device(host, full=capture_dir is not None)
    except CaptureError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_BAD_INPUT if isinstance(e, NoSuchDevice) else EXIT_FAILED) from None
    if capture_dir is None:
        _print_facts(console, got)
        return
    r = redaction_for(got.outputs, got.identity, got.users)
    try:
        written = write_fixtures(capture_dir, case or _case(got), got.outputs, r, datetime.now(UTC).date())
    except ValueError as e:
        console.error(str(e))
        raise typer.Exit(EXIT_FAILED) from None
    failed = [w for w in written if not w.parsed]
    if console.json_mode:
        console.json({
            "device": host, "directory": str(capture_dir), "redacted": r.kinds(),
            "unparsed_workflows": got.unparsed,
            "fixtures": [{"path": str(w.path), "probe": w.probe, "parsed": w.parsed, "error": w.error}
                         for w in written],
        })  # fmt: skip
    else:
        console.table(
            f"{host}: {len(written)} fixtures in {capture_dir}",
            ["probe", "parsed", "file"],
            [(w.probe, "yes" if w.parsed else f"NO: {w.error}", w.path.name) for w in written],
        )
        shown = ", ".join(f"{n} {k}" for k, n in r.kinds().items()) or "nothing"
        console.info(f"redacted: {shown}. Read every file before sharing it (README: real Macs).")
        for line in got.unparsed:
            console.warning(f"facts did not parse, so that workflow's plan probes are missing: {line}")
    if failed or got.unparsed:
        raise typer.Exit(EXIT_FAILED)


def _print_facts(console: Console, got: Capture) -> None:
    try:
        doc = parse_client_facts(got.outputs, context.settings().verify.rules()).as_json()
    except ValueError as e:
        console.error(f"{got.device}: could not read the Mac's facts: {e}")
        raise typer.Exit(EXIT_FAILED) from None
    if console.json_mode:
        console.json({"device": got.device, "facts": doc})
        return
    console.table(f"{got.device}: facts", ["fact", "value"], _rows(doc))
