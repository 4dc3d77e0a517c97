"""Several processes migrate and write one database at once (WAL + busy timeout on SQLite)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlmodel import func, select

from orchestrator.state.db import create_db_engine, session_scope
from orchestrator.state.models import AuditEvent

WRITER = textwrap.dedent(
    """
    import sys
    from orchestrator.state.db import create_db_engine, init_schema, session_scope
    from orchestrator.state.models import AuditEvent

    url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = create_db_engine(url)
    init_schema(engine)  # both processes race to create the schema first
    for i in range(n):
        with session_scope(engine) as s:  # one transaction per row: many lock hand-overs
            s.add(AuditEvent(actor=who, action="write", params_json=str(i)))
    print("done", who)
    """
)


def test_two_processes_write_concurrently(db_url: str) -> None:
    n = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, who, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.startswith("done")
    engine = create_db_engine(db_url)
    try:
        with session_scope(engine) as s:
            for who in ("a", "b"):
                count = s.exec(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.actor == who)
                ).one()
                assert count == n
        if db_url.startswith("sqlite"):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        engine.dispose()
