"""The PUSH step: the plan's uploads (DMG, PFX re-wrapped for this Mac, CA PEMs) over SFTP into the private
directory, retried on a new connection when the link drops; a file already there is not sent again."""

from __future__ import annotations

import asyncio

from orchestrator.state.models import StepStatus
from tasks.model import Plan, StepDef
from workers.runner.context import StepContext
from workers.ssh import TransportError, UploadItem, upload_many_with_retry


async def push(job: StepContext, sd: StepDef, plan: Plan) -> None:
    rs, materials = job.records, job.work.materials
    begun = rs.begin(sd.name, plan)
    remote_dir = job.settings.private_dir or getattr(job.work.params, "private_dir", None)
    if not remote_dir:
        rs.failure = rs.fail(sd.name, begun, "PlanError", "no private directory to upload into")
        return
    try:
        items = await asyncio.to_thread(  # the PFX is decrypted and re-wrapped here: not on the loop
            lambda: [UploadItem(materials.source(u.source), u.name, u.mode) for u in plan.uploads]
        )
    except (KeyError, ValueError) as e:
        rs.failure = rs.fail(sd.name, begun, "MissingInput", str(e))
        return
    await rs.flush()
    rs.changed.add(sd.name)  # from here on the private directory may exist: cleanup must run
    try:
        results = await upload_many_with_retry(job.link.reconnect, items, remote_dir)
    except TransportError as e:
        rs.failure = rs.fail(sd.name, begun, type(e).__name__, str(e))
        return
    sent = [r for r in results if not r.skipped]
    detail = ", ".join(f"{r.path} ({r.bytes} B{', already there' if r.skipped else ''})" for r in results)
    rs.end(sd.name, begun, StepStatus.CHANGED if sent else StepStatus.NOOP,
           noop_reason=None if sent else "every file was already there", tail=detail)
