"""The worker side of job events: ``job["emit"](type, data)`` for task functions.

``Emitter`` buffers events and a thread posts them (``POST /jobs/{id}/events``) in
batches at least every ``FLUSH_SECONDS``; each event carries its ``seq`` (0, 1, ... within
the attempt), so a batch retried after a network error, a 5xx or a 429 (backoff up to
``RETRY_MAX_SECONDS``, at least the answer's ``Retry-After`` up to that) is never stored
twice. A 413 ``events_limit`` or a 409 (the lease was lost, the job is being cancelled or
is no longer running) stops it: pending events are dropped and the task's next ``emit``
raises ``TaskStopped``, which stops the task.
``close()`` posts what is left before the worker completes the job.

``LogForwarder`` turns the log records a task makes (in its own thread) into ``log``
events, when the worker runs with ``--stream-logs`` or the task calls
``job["stream_logs"]()``.
"""

import collections
import json
import logging
import threading
import time

import requests

from object_challenge.jobs.tasks import TaskFailed

log = logging.getLogger("object_challenge.worker.events")

TYPES = ("stdout", "stderr", "system", "progress", "log")
FLUSH_SECONDS = 0.1  # a batch goes out at least this often while events wait
BATCH_EVENTS = 500  # events per post (the server takes up to 1000)
BATCH_BYTES = 32 * 1024  # data bytes per post: well under the gateway's body limit (64 KiB)
EVENT_MAX_BYTES = 16 * 1024  # one event's data as JSON; a longer str is cut, anything else refused
RETRY_MAX_SECONDS = 5.0
CLOSE_SECONDS = 10.0  # how long close() keeps trying to post what is left


class TaskStopped(TaskFailed):
    """The server will not take more events for this job (limit, lease lost, cancel): stop."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _size(data):
    return len(json.dumps(data, separators=(",", ":"), allow_nan=False))


class Emitter:
    def __init__(self, client, job_id, attempt):
        self.client = client  # a JobClient of its own (its session is used from this thread)
        self.job_id = job_id
        self.attempt = attempt
        self.seq = 0
        self.pending = collections.deque()  # (event, size)
        self.cond = threading.Condition()
        self.stopped = None  # the reason, once the server refused for good
        self.closing = False
        self.last_id = ""
        self.posted = 0
        self.thread = None  # the posting thread, started by the first event (most jobs emit none)

    # -- the task's side ----------------------------------------------------------------
    def emit(self, type, data=None):
        """Queue one event (``type``: stdout, stderr, system, progress, log; ``data``: JSON)."""
        if self.stopped:
            raise TaskStopped(self.stopped)
        if type not in TYPES:
            raise ValueError(f"event type must be one of {', '.join(TYPES)}")
        size = _size(data)  # ValueError for NaN, TypeError for what is not JSON
        if size > EVENT_MAX_BYTES:
            if not isinstance(data, str):
                raise ValueError(f"an event's data is at most {EVENT_MAX_BYTES} bytes of JSON")
            data = data[: EVENT_MAX_BYTES // 6] + "…[cut]"  # \\uXXXX escapes: 6 bytes a char at worst
            size = _size(data)
        with self.cond:
            if self.closing:
                raise RuntimeError("the job's events are closed")
            self.pending.append(({"type": type, "data": data, "seq": self.seq}, size))
            self.seq += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=f"events-{self.job_id}", daemon=True)
                self.thread.start()
            if len(self.pending) >= BATCH_EVENTS:
                self.cond.notify()

    # -- the posting thread -------------------------------------------------------------
    def _batch(self):
        events, total = [], 0
        for event, size in self.pending:
            if events and (len(events) >= BATCH_EVENTS or total + size > BATCH_BYTES):
                break
            events.append(event)
            total += size
        return events

    def _run(self):
        backoff = FLUSH_SECONDS
        while True:
            with self.cond:
                if not self.pending and not self.closing:
                    self.cond.wait(FLUSH_SECONDS)
                if not self.pending:
                    if self.closing:
                        return
                    continue
                batch = self._batch()
            outcome = self._post(batch)
            retry_after = 0.0
            if isinstance(outcome, tuple):  # ("retry", the answer's Retry-After)
                outcome, retry_after = outcome
            with self.cond:
                if outcome == "ok":
                    for _ in batch:
                        self.pending.popleft()
                    backoff = FLUSH_SECONDS
                elif outcome == "retry":
                    if self.closing and time.monotonic() > self.give_up_at:
                        log.warning("job %s: %d events not posted (server unreachable)", self.job_id, len(self.pending))
                        self.pending.clear()
                        return
                    if retry_after:  # 429/503: not before the server said (close() does not hurry it)
                        self.cond.wait_for(lambda: False, retry_after)
                    else:
                        self.cond.wait(backoff)  # close() wakes it early
                    backoff = min(backoff * 2, RETRY_MAX_SECONDS)
                else:  # refused for good
                    self.stopped = outcome
                    self.pending.clear()
                    return

    def _post(self, batch):
        try:
            answer = self.client.post_events(self.job_id, self.attempt, batch)
        except requests.RequestException as exc:
            log.info("job %s: posting events failed (%s); retrying", self.job_id, exc)
            return "retry"
        except Exception as exc:  # ClientError: the server answered with an error
            status = getattr(exc, "status", 0)
            body = getattr(exc, "body", {}) or {}
            if status >= 500 or status in (0, 429):
                return "retry", min(float(getattr(exc, "retry_after", None) or 0), RETRY_MAX_SECONDS)
            code = body.get("error") or str(status)
            log.warning("job %s: events refused: %s", self.job_id, exc)
            if status == 413 and code != "events_limit":  # the gateway's body limit: drop this batch
                return "ok"
            return f"{code}: {body.get('message', '')}".strip(": ")
        self.last_id = answer.get("last_id") or self.last_id
        self.posted += answer.get("accepted", 0)
        return "ok"

    def close(self, timeout=CLOSE_SECONDS):
        """Post what is left (for up to ``timeout`` s of failures), then stop the thread."""
        with self.cond:
            self.closing = True
            self.give_up_at = time.monotonic() + timeout
            self.cond.notify()
            thread = self.thread
        if thread is not None:
            thread.join(timeout + RETRY_MAX_SECONDS + self.client.timeout)


class LogForwarder(logging.Handler):
    """Log records made in ``thread_id`` (the task's thread) become ``log`` events."""

    QUIET = ("object_challenge.worker", "urllib3", "requests")  # the worker's own traffic

    def __init__(self, emitter, thread_id, level=logging.INFO):
        super().__init__(level)
        self.emitter = emitter
        self.thread_id = thread_id

    def emit(self, record):
        if record.thread != self.thread_id or record.name.startswith(self.QUIET):
            return
        try:
            data = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
            self.emitter.emit("log", data)
        except Exception:  # a log call must never break the task (TaskStopped shows on its next emit)
            pass


class JobEvents:
    """What run_job adds to a job for its tasks: ``emit`` and ``stream_logs``."""

    def __init__(self, client, job, stream_logs=False):
        self.emitter = Emitter(client, job["job_id"], int(job.get("attempt") or 1))
        self.forwarder = None
        if stream_logs:
            self.stream_logs()

    def stream_logs(self, level=logging.INFO):
        """Stream the log records this thread makes from now on (idempotent)."""
        if self.forwarder is None:
            self.forwarder = LogForwarder(self.emitter, threading.get_ident(), level)
            logging.getLogger().addHandler(self.forwarder)

    def close(self):
        if self.forwarder is not None:
            logging.getLogger().removeHandler(self.forwarder)
            self.forwarder = None
        self.emitter.close()
