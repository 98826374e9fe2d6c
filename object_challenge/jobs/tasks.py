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
CHECKS = {}  # name -> check() -> (ok, reason): run by a worker at start, before it declares the task


class TaskFailed(Exception):
    """The task could not do its work; the job is completed as failed with this message."""


class UnknownTask(TaskFailed):
    pass


def register_task(name, check=None):
    """Register ``func`` as task ``name``; ``check()`` -> (ok, reason), if given, is what a
    worker runs at start: it declares the task only if the check passes."""

    def decorator(func):
        if name in TASKS and TASKS[name] is not func:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name].__module__}")
        TASKS[name] = func
        if check is not None:
            CHECKS[name] = check
        return func

    return decorator


def get_task(name):
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"no task module {name!r} on this worker (known: {', '.join(sorted(TASKS))})") from None


def usable(names):
    """``(declared, refused)``: the names whose start-up check passes (or that have none),
    and ``{name: reason}`` for the others (unknown names included)."""
    declared, refused = [], {}
    for name in names:
        if name not in TASKS:
            refused[name] = "no such task module on this worker"
            continue
        check = CHECKS.get(name)
        if check is not None:
            try:
                ok, reason = check()
            except Exception as exc:  # a crashing check refuses its task, never the worker
                ok, reason = False, f"{type(exc).__name__}: {exc}"
            if not ok:
                refused[name] = reason
                continue
        declared.append(name)
    return declared, refused


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
