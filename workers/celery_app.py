"""The Celery app of the distributed driver: `celery -A workers.celery_app worker` (and `... flower`).

The configuration and why each value is set: `workers.celery_config`. The tasks: `workers.celery_tasks`.
Flower: `celery -A workers.celery_app flower --basic-auth=USER:PASSWORD` reads the same settings.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import Settings, load_settings
from workers.celery_config import MacfleetCelery
from workers.celery_tasks import register


def make_app(settings: Settings, *, tasks: bool = True) -> MacfleetCelery:
    """A Celery app for settings. With tasks, the device and advance tasks are registered (a worker); a
    controller that only publishes (by name, `send_task`) passes tasks=False."""
    app = MacfleetCelery(settings)
    if tasks:
        register(app)
    return app


_app: list[MacfleetCelery] = []


def __getattr__(name: str) -> Any:
    """`app` (what `celery -A workers.celery_app` looks up) is made on first access, from the process's
    environment and configuration file, so that importing this module reads no settings."""
    if name in ("app", "celery"):
        if not _app:
            _app.append(make_app(load_settings()))
        return _app[0]
    raise AttributeError(name)
