"""Periodic work: one process, a list of (interval, task) pairs, run in an app context.

Services register their tasks in TASKS ("module:function", seconds). Each task
is cheap and idempotent, so running two schedulers does no harm.
"""
import importlib
import logging
import signal
import time

import click
from flask import current_app
from flask.cli import with_appcontext

log = logging.getLogger(__name__)

TASKS = [
    ("object_challenge.snapshot:republish_if_missing", 1.0),
    ("object_challenge.jobs.service:tick", 0.5),  # expired leases, stopped workers
    ("object_challenge.publish.flush:flush_due", 1.0),  # live boards -> MongoDB
    ("object_challenge.publish.service:publish_settings_if_missing", 1.0),  # move scripts for the gateway
    ("object_challenge.publish.flush:evict_idle", 60.0),  # idle written-back boards leave Redis
]


def _load(path):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_forever(tasks=None, stop=None):
    tasks = [(_load(path), interval) for path, interval in (tasks or TASKS)]
    next_run = [0.0] * len(tasks)
    stop = stop or (lambda: False)
    while not stop():
        now = time.monotonic()
        for i, (task, interval) in enumerate(tasks):
            if now >= next_run[i]:
                try:
                    task()
                except Exception:
                    log.exception("scheduled task %s failed", task.__name__)
                next_run[i] = now + interval
        time.sleep(max(0.05, min(next_run) - time.monotonic()))


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the periodic tasks until SIGTERM."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    current_app.logger.info("scheduler: %s", ", ".join(p for p, _ in TASKS))
    run_forever(stop=lambda: bool(stopping))
