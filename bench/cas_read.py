"""What an uninstall run pays to learn which CAs our runs trusted on each Mac: the audit trail read once for
the fleet (`cas_added_by_device`, today) against once per device (before: each read scanned every device's
rows, O(N^2) in the fleet size).

    .venv/bin/python bench/cas_read.py [--devices 1000]

SQLite in a temporary directory, two `ca.added` audit rows per device. Controller CPU (thread time).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from sqlmodel import Session, select  # noqa: E402

from orchestrator.state.db import create_db_engine, init_schema  # noqa: E402
from orchestrator.state.models import AuditEvent  # noqa: E402
from workers.runner.inputs import CA_ADDED, cas_added_by_device  # noqa: E402


def per_device(session: Session, device_id: str) -> tuple[str, ...]:
    """The read as it was: every `ca.added` row, filtered in Python, for one device."""
    out: list[str] = []
    for raw in session.exec(select(AuditEvent.params_json).where(AuditEvent.action == CA_ADDED)).all():
        doc = json.loads(raw)
        if doc.get("device_id") == device_id and doc.get("sha1"):
            out.append(str(doc["sha1"]).lower())
    return tuple(dict.fromkeys(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    n = ap.parse_args().devices
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/bench.sqlite")
        init_schema(engine)
        with Session(engine) as s:
            for i in range(n):
                for sha1 in ("aa", "bb"):
                    doc = {"device_id": f"d{i}", "run_id": "r", "sha256": "0" * 64, "sha1": sha1}
                    s.add(AuditEvent(actor="runner", action=CA_ADDED, params_json=json.dumps(doc)))
            s.commit()
        with Session(engine) as s:
            sample = min(n, 100)
            t = time.thread_time()
            for i in range(sample):
                per_device(s, f"d{i}")
            each = (time.thread_time() - t) / sample
            t = time.thread_time()
            found = cas_added_by_device(s)
            once = time.thread_time() - t
        engine.dispose()
    assert len(found) == n
    print(f"{n} devices, {2 * n} audit rows: once per device {each * 1e3:.2f} ms each = {each * n:.2f} s "
          f"for the run; once for the fleet {once * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
