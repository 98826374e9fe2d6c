"""Task modules a worker runs, by name: ``register_task("name")(func)``.

``func(data, job)`` gets the task's ``data`` and the whole job document (on the
built-in worker with ``job["cancelled"]()``: true once the job's cancel was asked; a
long task should check it and return or raise); it returns a JSON-able result or
raises (``TaskFailed`` for an expected failure, with a message for the job record).
Importing a module registers its tasks: the app factory imports every service
package, so `manage.py worker` knows them all.
The one place a module is imported by a name is ``load_task_modules``: the
operator names extra plugin modules at run time (``worker --tasks pkg.mod``).
"""

import importlib
import logging
import time

log = logging.getLogger(__name__)

TASKS = {}


class TaskFailed(Exception):
    """The task could not do its work; the job is completed as failed with this message."""


class UnknownTask(TaskFailed):
    pass


def register_task(name):
    def decorator(func):
        if name in TASKS and TASKS[name] is not func:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name].__module__}")
        TASKS[name] = func
        return func

    return decorator


def get_task(name):
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"no task module {name!r} on this worker (known: {', '.join(sorted(TASKS))})") from None


def load_task_modules(extra=()):
    """Import the plugin modules an operator named (``--tasks``); returns every known task."""
    for name in extra:
        importlib.import_module(name)
    return sorted(TASKS)


@register_task("echo")
def echo(data, job):
    """Return the task data unchanged."""
    return data


@register_task("sleep")
def sleep(data, job):
    """Sleep ``data`` seconds (a number, or ``{"seconds": n}``); up to an hour."""
    seconds = data.get("seconds", 1) if isinstance(data, dict) else data
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise TaskFailed("sleep needs seconds: a number from 0 to 3600")
    cancelled = job.get("cancelled") if isinstance(job, dict) else None
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancelled is not None and cancelled():
            raise TaskFailed("cancelled")
        time.sleep(min(left, 0.05))
    return {"slept": seconds}


@register_task("fail")
def fail(data, job):
    """Fail on purpose (tests, drills): ``{"message": "..."}``."""
    message = data.get("message") if isinstance(data, dict) else None
    raise TaskFailed(message or "failed on purpose")


@register_task("emit")
def emit(data, job):
    """Job events on purpose (tests, demos): ``{"count": n, "interval": s, "type": "stdout", "log": bool}``
    emits ``"line i"`` n times (``log``: logs them instead, streamed with ``--stream-logs``)."""
    data = data if isinstance(data, dict) else {}
    count, interval = data.get("count", 10), data.get("interval", 0)
    if type(count) is not int or not 0 <= count <= 100_000 or not isinstance(interval, (int, float)):
        raise TaskFailed("emit needs count (0..100000) and interval (seconds)")
    for i in range(count):
        if data.get("log"):
            log.info("line %d", i)
        else:
            job["emit"](data.get("type", "stdout"), f"line {i}")
        if interval:
            time.sleep(interval)
    return {"emitted": count}
