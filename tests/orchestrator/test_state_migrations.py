"""Migrations: the shipped revisions build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from orchestrator.state.db import (
    SchemaError,
    create_db_engine,
    current_revision,
    head_revision,
    init_schema,
    normalize_url,
    redacted_url,
    session_scope,
    sqlite_path,
)
from orchestrator.state.models import Device, DeviceJob, Run, Secret


def test_migrated_schema_equals_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_every_model_table_exists_with_alembic_version(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) | {"alembic_version"} == names


def test_init_schema_is_idempotent_and_keeps_rows(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(Secret(name="n", kind="ssh-password", ciphertext=b"x", key_id="k"))
    assert init_schema(engine) == head_revision()
    with session_scope(engine) as s:
        assert [x.name for x in s.exec(select(Secret)).all()] == ["n"]


def test_empty_database_has_no_revision(db_url: str) -> None:
    eng = create_db_engine(db_url)
    try:
        assert current_revision(eng) is None
        init_schema(eng)
        assert current_revision(eng) == head_revision()
    finally:
        eng.dispose()


def test_unknown_newer_revision_is_refused_with_advice(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
    with pytest.raises(SchemaError, match=r"ffff_from_the_future.*does not know.*upgrade macfleet"):
        init_schema(engine)


def test_datetimes_read_back_aware_in_utc(engine: Engine) -> None:
    plus2 = timezone(timedelta(hours=2))
    at = datetime(2026, 3, 1, 12, 0, tzinfo=plus2)
    with session_scope(engine) as s:
        run = Run(kind="install", created_at=at, started_at=datetime(2026, 3, 1, 9, 30))  # naive = UTC
        s.add(run)
        run_id = run.id
    with session_scope(engine) as s:
        got = s.get(Run, run_id)
        assert got is not None
        assert got.created_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.started_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        # comparable with aware "now" in SQL and in Python (lease expiry relies on both)
        expired = s.exec(
            select(Run).where(Run.created_at < datetime(2026, 3, 1, 10, 30, tzinfo=UTC))  # type: ignore[arg-type]
        ).all()
        assert [r.id for r in expired] == [run_id]


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(DeviceJob(run_id="no-such-run", device_id="no-such-device"))


def test_url_helpers() -> None:
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    assert redacted_url("postgresql://u:hunter2@h/db") == "postgresql+psycopg://u:***@h/db"
    assert sqlite_path("sqlite:////var/x/m.db") is not None
    assert str(sqlite_path("sqlite:////var/x/m.db")) == "/var/x/m.db"
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql://h/db") is None


def test_a_database_at_the_first_revision_upgrades_keeping_its_jobs(db_url: str) -> None:
    """0001 -> head: the jobs a run recorded survive, and the wave-count index (0002) is there."""
    from alembic import command

    from orchestrator.state.db import _alembic_config

    eng = create_db_engine(db_url)
    try:
        with eng.connect() as conn:
            command.upgrade(_alembic_config(conn), "0001")
            conn.commit()
        assert current_revision(eng) == "0001"
        with session_scope(eng) as s:
            run = Run(kind="install")
            s.add(run)
            s.flush()
            dev = Device(name="mac-1", address="127.0.0.1")
            s.add(dev)
            s.flush()
            s.add(DeviceJob(run_id=run.id, device_id=dev.id, wave=2, status="failed"))
        assert init_schema(eng) == head_revision() != "0001"
        with session_scope(eng) as s:
            jobs = s.exec(select(DeviceJob)).all()
            assert [(j.wave, j.status) for j in jobs] == [(2, "failed")]
        indexes = {i["name"]: i["column_names"] for i in inspect(eng).get_indexes("devicejob")}
        assert indexes["ix_devicejob_run_id_wave_status"] == ["run_id", "wave", "status"]
    finally:
        eng.dispose()
