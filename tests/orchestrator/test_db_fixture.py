"""The shared database fixtures give a working, isolated database on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine


def test_engine_has_schema_and_is_empty(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {"device", "secret", "run", "devicejob", "steprun"} <= names
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM device")).scalar_one() == 0


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_database(engine: Engine, round_: int) -> None:
    # Runs twice per backend: in round 2 a database shared with round 1 would already hold the row.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO device_group (id, name, vars_json) VALUES ('g1', 'lab', '{}')"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM device_group")).scalar_one() == 1


def test_postgresql_is_reached_over_loopback_with_a_password(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        assert db_url.startswith("sqlite:///")
        return
    assert "@127.0.0.1:" in db_url
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    try:
        psycopg.connect(host="127.0.0.1", port=u.port, user=u.username, password="wrong", dbname=u.database)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("a wrong password was accepted: the server does not check passwords")


def test_missing_postgresql_binaries_fail_and_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import conftest

    monkeypatch.setattr(conftest.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(conftest.shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match="run scripts/setup"):
        conftest._pg_bindir()
