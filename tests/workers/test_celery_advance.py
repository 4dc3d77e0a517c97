"""A finished device job's own `advance`: while its wave still has a job in flight and none to publish, the
answer is "wait" without counting the run (two index seeks, not a count of every job: O(N) per finished
job made a run O(N^2)); in every other case the full count decides, as before."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import runs
from orchestrator.state.models import Device, DeviceJob, JobStatus, Run, RunStatus
from workers import celery_dispatch


class _NoBroker:
    """Publishing anything would be a failure of the test: the fast path must not touch the broker."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the broker was used ({name})")


class _Counted(Exception):
    pass


def _seed(engine: Engine, wave0: list[str], wave1: list[str], run_status: str = RunStatus.RUNNING.value) -> str:
    with Session(engine) as s:
        run = Run(kind="install", status=run_status)
        s.add(run)
        s.flush()
        for wave, statuses in ((0, wave0), (1, wave1)):
            for i, status in enumerate(statuses):
                dev = Device(name=f"mac-{run.id[:8]}-{wave}-{i}", address="127.0.0.1")
                s.add(dev)
                s.flush()
                s.add(DeviceJob(run_id=run.id, device_id=dev.id, wave=wave, status=status))
        s.commit()
        return run.id


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> None:
    def count(*_a: Any, **_k: Any) -> Any:
        raise _Counted

    monkeypatch.setattr(runs, "wave_counts", count)


S, R, Q, P, I = (JobStatus.SUCCEEDED.value, JobStatus.RUNNING.value, JobStatus.QUEUED.value,  # noqa: E741
                 JobStatus.PENDING.value, JobStatus.INTERRUPTED.value)


@pytest.mark.parametrize("wave0", [[S, R], [S, Q, R], [JobStatus.FAILED.value, R]])
def test_a_busy_wave_waits_without_counting_the_run(engine: Engine, counted: None, wave0: list[str]) -> None:
    run_id = _seed(engine, wave0, [P, P])
    assert celery_dispatch.advance(engine, _NoBroker(), run_id, finished_wave=0) == "wait"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wave0", "run_status", "why"),
    [
        ([S, S], RunStatus.RUNNING.value, "the wave is done: the next one opens"),
        ([S, R, I], RunStatus.RUNNING.value, "an interrupted job of the wave waits to be published"),
        ([S, R], RunStatus.HALTED.value, "halted by hand: the full rules decide"),
    ],
)
def test_otherwise_the_run_is_counted(
    engine: Engine, counted: None, wave0: list[str], run_status: str, why: str
) -> None:
    run_id = _seed(engine, wave0, [P, P], run_status)
    with pytest.raises(_Counted):
        celery_dispatch.advance(engine, _NoBroker(), run_id, finished_wave=0)  # type: ignore[arg-type]
    with pytest.raises(_Counted):  # and a call that names no wave always counts
        celery_dispatch.advance(engine, _NoBroker(), _seed(engine, [S, R], [P]))  # type: ignore[arg-type]
