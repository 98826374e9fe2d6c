"""Periodic work: one process, a list of (task, seconds) pairs, run in an app context.

Each service package adds its tasks in its ``register(app)`` (to
``app.extensions["oc.schedule"]``). Each task is cheap and idempotent, so running
two schedulers does no harm.
"""

import logging
import signal
import time

import click
from flask import current_app
from flask.cli import with_appcontext

log = logging.getLogger(__name__)


def run_forever(tasks, stop=None):
    tasks = list(tasks)
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
    tasks = current_app.extensions["oc.schedule"]
    current_app.logger.info("scheduler: %s", ", ".join(f"{t.__module__}.{t.__name__}" for t, _ in tasks))
    run_forever(tasks, stop=lambda: bool(stopping))
