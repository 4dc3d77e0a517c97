"""The Celery configuration of the distributed driver and its app class (the app itself, what
`celery -A workers.celery_app worker` loads, is made in `workers.celery_app`).

Configured from our Settings (`[celery]` in orchestrate.toml, `ORCHESTRATE_CELERY__*` in the environment);
the Redis password comes from the environment (`ORCHESTRATE_CELERY__PASSWORD`, or inside the URL given by
env), never from the repository. What the configuration promises, and why:

- JSON only (`task_serializer`, `result_serializer`, `accept_content`): task arguments are ids and names,
  readable in Flower, never a pickled object and never a secret (rule 6).
- At least once: `task_acks_late` (a message is acknowledged when the task ENDS, so a worker that dies
  mid-job leaves it unacknowledged) and `task_reject_on_worker_lost`. With Redis a dead worker's
  unacknowledged messages are handed out again by the surviving workers once `visibility_timeout` passed
  (their sweep runs every `restore_interval`), so the visibility timeout is set above the hard time limit of
  a job. A duplicate (redelivery, a resume) is harmless: the device job's lease in the database lets one
  execution at a time work on a device, and a finished job's task returns at once (`workers/celery_tasks`).
- `worker_prefetch_multiplier = 1`: a worker reserves only as many jobs as it has threads, so queued jobs
  stay in Redis for other workers (and are not held hostage by a worker that dies).
- The threads pool (`worker_pool = "threads"`, `worker_concurrency` = 200 by default): each thread only
  waits for its device's coroutine on ONE asyncio loop per worker process (asyncssh is asynchronous), so
  one process holds hundreds of SSH sessions. Celery's own time limits are not enforced by the threads pool,
  so the device task enforces `task_soft_time_limit` (stop after the current step) and `task_time_limit`
  (cancel) itself; both are also set here for a prefork worker.
- Task events on (`worker_send_task_events`, `task_send_sent_event`, `task_track_started`): Flower shows
  each device job as soon as it is sent, with its run id, job id and device name.
- Two queues: `macfleet.devices` (one message per device job) and `macfleet.control` (wave advances), so a
  control message never waits behind thousands of device jobs.

Flower: `celery -A workers.celery_app flower --basic-auth=USER:PASSWORD` reads the same settings.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from kombu.entity import Queue

from orchestrator.config import CelerySettings, Settings
from orchestrator.redact import LOG_REDACTOR

DEVICE_QUEUE = "macfleet.devices"
CONTROL_QUEUE = "macfleet.control"
DEVICE_TASK = "macfleet.device_job"
ADVANCE_TASK = "macfleet.advance_run"


def with_password(url: str, password: str | None) -> str:
    """url with password put in when it has none (a `redis://host:port/db` URL and a password from env)."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password or parts.scheme not in ("redis", "rediss"):
        return url
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def celery_config(c: CelerySettings) -> dict[str, Any]:
    """The Celery configuration for our settings (see the module docstring for why each value)."""
    transport = {
        "visibility_timeout": c.effective_visibility_timeout,
        "unacked_restore_interval": c.restore_interval,
        "unacked_restore_throttle": 1,  # every sweep looks (the sweep is one ZRANGE)
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }
    backend = with_password(c.result_backend, c.password) if c.result_backend else None
    return {
        "broker_url": with_password(c.broker_url, c.password),
        "result_backend": backend,
        "task_ignore_result": backend is None,
        "result_expires": 86400,
        "result_extended": True,  # Flower and `AsyncResult` show the task name and args (ids and names)
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": c.worker_concurrency,
        "task_time_limit": c.task_time_limit,
        "task_soft_time_limit": c.effective_soft_limit,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": c.effective_visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits out a Redis restart
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": c.publish_retries,
            "interval_start": 0.5,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_queues": [Queue(DEVICE_QUEUE), Queue(CONTROL_QUEUE)],  # type: ignore[no-untyped-call]
        "task_default_queue": DEVICE_QUEUE,
        "task_routes": {DEVICE_TASK: {"queue": DEVICE_QUEUE}, ADVANCE_TASK: {"queue": CONTROL_QUEUE}},
        "worker_redirect_stdouts_level": "INFO",
    }


class MacfleetCelery(Celery):  # type: ignore[misc]
    """A Celery app that keeps the Settings it was made from (read by the tasks; never serialized)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("macfleet", set_as_current=False)
        self.settings = settings
        self.conf.update(celery_config(settings.celery))


def _redact_handlers(logger: logging.Logger | None = None, **_kw: Any) -> None:
    """Every handler Celery sets up masks the secrets registered with LOG_REDACTOR (the worker decrypts SSH
    and sudo passwords and makes one-time PFX passwords; none may reach its log)."""
    for h in (logger or logging.getLogger()).handlers:
        h.addFilter(LOG_REDACTOR.logging_filter())


after_setup_logger.connect(_redact_handlers, weak=False)
after_setup_task_logger.connect(_redact_handlers, weak=False)
