"""The ``run_program`` task: a worker builds and runs one run in the sandbox.

Output goes out as the job's events while the program runs (``job["emit"]``, the
job-events worker API: stdout, stderr, system); a cancel (``job["cancelled"]()``)
kills the program within ``sandbox.CANCEL_POLL_S``. The result, stored with the job,
is ``{"verdict", "cancelled", "stages"}`` (execute.py).

A worker declares ``run_program`` only if ``sandbox.self_test()`` passes at its start
(``check_sandbox``, registered with the task).
"""

import logging

from object_challenge.jobs.emitter import TaskStopped
from object_challenge.jobs.tasks import TaskFailed, register_task
from object_challenge.runs import sandbox
from object_challenge.runs.execute import execute
from object_challenge.runs.sandbox import Limits

log = logging.getLogger(__name__)

_CHECKED = {}


def check_sandbox():
    """(ok, reason): the sandbox self-test, once per process."""
    if "result" not in _CHECKED:
        _CHECKED["result"] = sandbox.self_test()
    return _CHECKED["result"]


def run_program(data, job):
    if not isinstance(data, dict):
        raise TaskFailed("run_program needs the prepared run (POST /newapi/runs makes it)")
    emit = job.get("emit") if isinstance(job, dict) else None
    cancelled = job.get("cancelled") if isinstance(job, dict) else None
    stopped = []  # the server refused more events (limit, lease lost, cancel): stop the program

    def on_event(stream, text):
        if emit is not None and not stopped:
            try:
                emit(stream, text)
            except TaskStopped as exc:
                stopped.append(exc)

    def should_cancel():
        return bool(stopped) or (cancelled is not None and cancelled())

    limits = Limits(**(data.get("limits") or {}))
    result = execute(
        data.get("language"),
        data.get("mode", "run"),
        data.get("files") or [],
        main=data.get("main"),
        stdin=data.get("stdin") or "",
        args=data.get("args") or [],
        limits=limits,
        on_event=on_event,
        should_cancel=should_cancel,
    )
    if stopped and not (cancelled is not None and cancelled()):
        raise stopped[0]
    log.info("run %s: %s", job.get("job_id") if isinstance(job, dict) else "?", result["verdict"])
    return result


register_task("run_program", check=check_sandbox)(run_program)
