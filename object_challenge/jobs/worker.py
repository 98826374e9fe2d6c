"""The worker program and ``JobClient``, its HTTP client for the queue's routes.

    python manage.py worker --queue Q                 (defaults from the app config)
    python -m object_challenge.jobs.worker --url http://127.0.0.1:8080/newapi --token T

Loop: poll (``?worker_id=`` and ``?modules=`` the registered task names, so the
server hands out only jobs this worker can run, can refuse a disabled worker and
knows who holds the lease); run the job's tasks one after the other in a thread
while a heartbeat thread extends the lease (every second while a job runs, so a
cancel is seen at once); complete the job with the results, or as failed with the
message of the task that raised. A job it cannot run after all is released, not
failed. A cancel (the heartbeat answers ``"cancel": [ids]``) makes
``job["cancelled"]()`` true; a task that does not stop within CANCEL_GRACE seconds
is abandoned (its thread left to end on its own) and the job is reported. Completions,
releases and heartbeats are retried with backoff (honouring ``Retry-After``) for as
long as the lease can still be saved. SIGTERM / SIGINT: no new job is taken; a
running job is finished and completed, then the program exits 0.
"""

import argparse
import contextvars
import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import requests

from object_challenge.jobs import tasks as task_registry
from object_challenge.jobs.emitter import JobEvents

log = logging.getLogger("object_challenge.worker")


class ClientError(Exception):
    """The server answered with an error status; ``body`` is its JSON error."""

    def __init__(self, status, body, retry_after=None):
        self.status = status
        self.body = body if isinstance(body, dict) else {"message": str(body)}
        self.retry_after = retry_after
        super().__init__(f"{status} {self.body.get('error', '')}: {self.body.get('message', '')}")


class JobClient:
    """The queue's routes as methods (``/newapi`` base URL, token auth)."""

    def __init__(self, url, token=None, queue=None, worker_id=None, timeout=10.0):
        self.url = url.rstrip("/")
        self.queue = queue
        self.worker_id = worker_id or default_worker_id()
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def _call(self, method, path, params=None, json=None, missing_ok=False):
        params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        response = self.session.request(method, self.url + path, params=params, json=json, timeout=self.timeout)
        if missing_ok and response.status_code == 404:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if response.status_code >= 400:
            retry_after = response.headers.get("Retry-After")
            try:
                retry_after = float(retry_after) if retry_after else None
            except ValueError:
                retry_after = None
            raise ClientError(response.status_code, body, retry_after)
        return body

    # -- producers -----------------------------------------------------------
    def enqueue(self, job_title, tasks, queue=None, max_attempts=None, delay_s=None):
        body = {"job_title": job_title, "tasks": tasks}
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        if delay_s:
            body["delay_s"] = delay_s
        return self._call("POST", "/queue", {"queue": queue or self.queue}, body)

    def enqueue_many(self, jobs, queue=None):
        """Enqueue job bodies in one request (all or none); returns ``{"job_ids", "count"}``."""
        return self._call("POST", "/queue", {"queue": queue or self.queue}, {"jobs": list(jobs)})

    def cancel(self, job_id):
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def job(self, job_id):
        return self._call("GET", f"/jobs/{job_id}")

    def wait_for(self, job_id, timeout=30.0, interval=0.1):
        """The job once it is completed or failed (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ("completed", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(interval)

    def queue_state(self, queue=None):
        return self._call("GET", "/queue", {"queue": queue or self.queue})

    # -- workers ---------------------------------------------------------------
    def poll(self, queue=None, modules=None):
        """The next job (one whose every task module is in ``modules``, if given), leased
        to this worker, or None when there is none."""
        params = {"queue": queue or self.queue, "worker_id": self.worker_id}
        if modules:
            params["modules"] = ",".join(modules)
        try:
            return self._call("GET", "/queue/poll", params)
        except ClientError as exc:
            if exc.status == 404:  # empty or disabled queue
                return None
            raise

    def heartbeat(self, status="idle", job_id=None, **extra):
        # "jobs": what this worker really runs, so that a lease it got without knowing
        # (the answer to its poll was lost) is not kept alive by its heartbeats
        body = {"status": status, "hostname": socket.gethostname(), "jobs": [job_id] if job_id else [], **extra}
        if job_id:
            body["job_id"] = job_id
        return self._call("POST", f"/workers/{self.worker_id}", json=body)

    def complete(self, job_id, failed=False, info=None, result=None, message=None):
        body = {"failed": failed, "info": info, "result": result, "message": message}
        return self._call("PATCH", f"/jobs/{job_id}/completed", {"worker_id": self.worker_id}, body)

    def post_events(self, job_id, attempt, events):
        """``events``: ``[{"type", "data", "seq"?}]``; returns ``{"accepted", "duplicates", "last_id"}``."""
        body = {"attempt": attempt, "events": events}
        return self._call("POST", f"/jobs/{job_id}/events", {"worker_id": self.worker_id}, body)

    def events(self, job_id, after="", limit=100):
        return self._call("GET", f"/jobs/{job_id}/events", {"after": after, "limit": limit})

    def copy(self):
        """The same client with a session of its own (for another thread)."""
        other = JobClient(self.url, None, self.queue, self.worker_id, self.timeout)
        other.session.headers.update(self.session.headers)
        return other

    def release(self, job_id, reason, retry_after_s=0):
        body = {"reason": reason, "retry_after_s": retry_after_s}
        return self._call("POST", f"/jobs/{job_id}/release", {"worker_id": self.worker_id}, body)


RETRY_STATUSES = (429, 502, 503, 504)


def retrying(call, deadline):
    """``call()``, retried on network errors and 429/502/503/504 with backoff (at least
    the answer's ``Retry-After``) until ``deadline`` (time.monotonic()); then it raises."""
    backoff = 0.1
    while True:
        try:
            return call()
        except (requests.RequestException, ClientError) as exc:
            if isinstance(exc, ClientError) and exc.status not in RETRY_STATUSES:
                raise
            wait = max(backoff, getattr(exc, "retry_after", None) or 0)
            if time.monotonic() + wait >= deadline:
                raise
            log.info("retrying in %.1fs after: %s", wait, exc)
            time.sleep(wait)
            backoff = min(backoff * 2, 5.0)


def default_worker_id():
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


CANCEL_CHECK = 1.0  # seconds between heartbeats while a job runs (a cancel is seen within it)
CANCEL_GRACE = 0.5  # seconds a cancelled task gets to return before it is abandoned


class Worker:
    def __init__(self, client, poll_interval=1.0, heartbeat_interval=5.0, stream_logs=False, modules=None):
        self.client = client
        self.stream_logs = stream_logs  # every task's log records become `log` events
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.modules = sorted(modules if modules is not None else task_registry.TASKS)
        self.stopping = threading.Event()
        self.current = None  # the job being run
        self.cancelled = threading.Event()  # the current job's cancel was asked
        self.lease_deadline = 0.0  # time.monotonic() by which the current lease ends
        self._beat_now = threading.Event()
        self._retime_only = False
        self._beats_done = threading.Event()

    def stop(self, *_args):
        if not self.stopping.is_set():
            log.info("worker %s: stopping after the current job", self.client.worker_id)
        self.stopping.set()
        self._beat_now.set()

    # -- heartbeats (a thread for the worker's whole life) ---------------------------
    def _interval(self):
        job = self.current
        if job is None:
            return self.heartbeat_interval
        return max(0.1, min(self.heartbeat_interval, CANCEL_CHECK, float(job.get("lease_seconds") or 60) / 3))

    def _beat(self, job):
        if job is None:
            return self.client.heartbeat("stopping" if self.stopping.is_set() else "idle")
        sent = time.monotonic()
        answer = self.client.heartbeat("in_progress", job["job_id"], job_title=job.get("job_title"))
        if job["job_id"] in (answer.get("leases") or {}):
            self.lease_deadline = sent + float(job.get("lease_seconds") or 60)
        if job["job_id"] in (answer.get("cancel") or []) and job is self.current:
            log.info("worker %s: job %s cancelled", self.client.worker_id, job["job_id"])
            self.cancelled.set()
        return answer

    def _heartbeats(self):
        """Beat every ``_interval()``; ``_beat_now`` beats at once, ``_retime`` only
        shortens the wait to the current interval (a job started: no extra request for
        a job that ends within it)."""
        next_at = 0.0
        while not self._beats_done.is_set():
            if time.monotonic() >= next_at:
                job = self.current
                try:
                    if job is None:
                        self._beat(None)
                    else:  # retried while the lease can still be saved
                        retrying(lambda job=job: self._beat(job), self.lease_deadline)
                except (requests.RequestException, ClientError) as exc:
                    log.warning("worker %s: heartbeat failed: %s", self.client.worker_id, exc)
                next_at = time.monotonic() + self._interval()
            self._beat_now.wait(max(0.0, next_at - time.monotonic()))
            if self._beat_now.is_set():
                self._beat_now.clear()
                soonest = time.monotonic() + self._interval()
                next_at = min(next_at, soonest) if self._retime_only else 0.0
            self._retime_only = False

    # -- the loop ------------------------------------------------------------------
    def run(self, burst=False):
        """Work until stopped (or, with ``burst``, until the queue is empty)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        beats = threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True)
        beats.start()
        backoff = self.poll_interval
        try:
            while not self.stopping.is_set():
                try:
                    polled = time.monotonic()
                    job = self.client.poll(modules=self.modules)
                except (requests.RequestException, ClientError) as exc:
                    if isinstance(exc, ClientError) and exc.status == 423:
                        # disabled by an admin: not a fault; ask again every second or so
                        log.info("worker %s: disabled by the server", self.client.worker_id)
                        self.stopping.wait(min(5.0, max(self.poll_interval, 1.0)))
                        continue
                    # server down, failing or limiting: back off and retry
                    wait = max(backoff, getattr(exc, "retry_after", None) or 0)
                    log.warning("worker %s: poll failed: %s", self.client.worker_id, exc)
                    self.stopping.wait(wait)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = self.poll_interval
                if job is None:
                    if burst:
                        break
                    self.stopping.wait(self.poll_interval)
                    continue
                self.lease_deadline = polled + float(job.get("lease_seconds") or 60)
                self.run_job(job)
        finally:
            self._beats_done.set()
            self._beat_now.set()
            beats.join(timeout=5)
        log.info("worker %s: stopped", self.client.worker_id)

    def _run_tasks(self, job, outcome):
        results = outcome["results"]
        if self.stream_logs:
            job["stream_logs"]()  # this thread's log records become `log` events
        for i, task in enumerate(job.get("tasks") or []):
            if self.cancelled.is_set():
                break
            module = task.get("module")
            try:
                results.append(task_registry.get_task(module)(task.get("data"), job))
            except Exception as exc:  # any task error fails the job, with its message on record
                outcome["failed"], outcome["message"] = True, f"tasks[{i}] {module}: {exc.__class__.__name__}: {exc}"
                log.warning("worker %s: job %s failed: %s", self.client.worker_id, job["job_id"], outcome["message"])
                break

    def _finish(self, call, what, job_id):
        try:
            retrying(call, self.lease_deadline)
            return True
        except ClientError as exc:  # 409: the lease ended meanwhile; the job is someone else's now
            log.warning("worker %s: could not %s job %s: %s", self.client.worker_id, what, job_id, exc)
        except requests.RequestException as exc:
            log.warning("worker %s: could not reach the server to %s %s: %s", self.client.worker_id, what, job_id, exc)
        return False

    def run_job(self, job):
        job_id = job["job_id"]
        missing = sorted({t.get("module") for t in job.get("tasks") or []} - set(task_registry.TASKS))
        if missing:  # handed a job this worker cannot run (polled without modules): give it back
            log.info("worker %s: releasing job %s: no task module %s", self.client.worker_id, job_id, missing)
            reason = f"worker {self.client.worker_id} has no module {', '.join(missing)}"
            self._finish(
                lambda: self.client.release(job_id, reason),
                "release",
                job_id,
            )
            return
        self.cancelled.clear()
        job = dict(job)
        job["cancelled"] = self.cancelled.is_set
        self.current = job
        self._retime_only = True  # heartbeats every CANCEL_CHECK s from now on while it runs
        self._beat_now.set()
        started = datetime.now(UTC)
        log.info(
            "worker %s: job %s %r attempt %s", self.client.worker_id, job_id, job.get("job_title"), job.get("attempt")
        )
        # job events: job["emit"](type, data), job["stream_logs"]() (emitter.py); posted before completing
        events = JobEvents(self.client.copy(), job)  # --stream-logs: started in the task's thread
        # job["client"]: this worker's JobClient (own session): tasks that post to the service (campaigns)
        job = {**job, "emit": events.emitter.emit, "stream_logs": events.stream_logs, "client": self.client.copy()}
        outcome = {"results": [], "failed": False, "message": None}
        # the task runs with this thread's context (the app context of `manage.py worker`)
        context = contextvars.copy_context()
        runner = threading.Thread(
            target=context.run, args=(self._run_tasks, job, outcome), name=f"job-{job_id}", daemon=True
        )
        runner.start()
        while runner.is_alive() and not self.cancelled.is_set():
            runner.join(0.05)
        if self.cancelled.is_set():
            runner.join(CANCEL_GRACE)
            if runner.is_alive():
                log.warning(
                    "worker %s: job %s cancelled; its task did not stop: abandoned", self.client.worker_id, job_id
                )
            outcome = {"results": list(outcome["results"]), "failed": True, "message": "cancelled"}
        events.close()
        ended = datetime.now(UTC)
        failed = outcome["failed"]
        info = {
            "worker_id": self.client.worker_id,
            "worker": socket.gethostname(),
            "start_time": started.isoformat(),
            "end_time": ended.isoformat(),
            "runtime": str(ended - started),
            "completed": not failed,
        }
        self.current = None
        done = self._finish(
            lambda: self.client.complete(
                job_id, failed=failed, info=info, result=outcome["results"], message=outcome["message"]
            ),
            "complete",
            job_id,
        )
        if done:
            log.info("worker %s: job %s %s", self.client.worker_id, job_id, "failed" if failed else "completed")


def run_worker(
    url,
    token,
    queue,
    worker_id=None,
    poll_interval=1.0,
    heartbeat_interval=5.0,
    task_modules=(),
    burst=False,
    stream_logs=False,
    modules=None,
):
    """``modules``: the task modules to declare (default all); each one's start-up check
    (``register_task(..., check=)``) must pass, else it is not declared, saying why."""
    loaded = task_registry.load_task_modules(task_modules)
    known, refused = task_registry.usable(modules or loaded)
    for name, reason in refused.items():
        log.error("worker: not declaring task module %s: %s", name, reason)
    if not known:
        raise SystemExit(f"worker: no task module to declare ({'; '.join(f'{k}: {v}' for k, v in refused.items())})")
    client = JobClient(url, token, queue, worker_id)
    log.info("worker %s: queue %r at %s, tasks: %s", client.worker_id, queue, url, ", ".join(known))
    Worker(client, poll_interval, heartbeat_interval, stream_logs, known).run(burst=burst)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run a job-queue worker against a /newapi URL.")
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080/newapi")
    parser.add_argument("--token", required=True, help="a token with the worker role")
    parser.add_argument("--queue", default=None, help="queue name (default: the server's default queue)")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--tasks", action="append", default=[], help="extra task module to import")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--stream-logs", action="store_true", help="post each task's log records as job events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(
        args.url,
        args.token,
        args.queue,
        args.worker_id,
        args.poll_interval,
        args.heartbeat_interval,
        args.tasks,
        args.burst,
        args.stream_logs,
    )


if __name__ == "__main__":
    main()
