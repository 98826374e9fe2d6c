"""The worker program and ``JobClient``, its HTTP client for the queue's routes.

    python manage.py worker --queue Q                 (defaults from the app config)
    python -m object_challenge.jobs.worker --url http://127.0.0.1:8080/newapi --token T

Loop: poll (``?worker_id=``, so the server can refuse a disabled worker and knows
who holds the lease); run the job's tasks one after the other while a heartbeat
thread extends the lease every third of it; complete the job with the results,
or as failed with the message of the task that raised. SIGTERM / SIGINT: no new
job is taken; a running job is finished and completed, then the program exits 0.
"""

import argparse
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

    def __init__(self, status, body):
        self.status = status
        self.body = body if isinstance(body, dict) else {"message": str(body)}
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
            raise ClientError(response.status_code, body)
        return body

    # -- producers -----------------------------------------------------------
    def enqueue(self, job_title, tasks, queue=None, max_attempts=None):
        body = {"job_title": job_title, "tasks": tasks}
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        return self._call("POST", "/queue", {"queue": queue or self.queue}, body)

    def job(self, job_id):
        return self._call("GET", f"/jobs/{job_id}")

    def wait_for(self, job_id, timeout=30.0, interval=0.1):
        """The job once it is completed or failed (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in ("completed", "failed"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(interval)

    def queue_state(self, queue=None):
        return self._call("GET", "/queue", {"queue": queue or self.queue})

    # -- workers ---------------------------------------------------------------
    def poll(self, queue=None):
        """The next job, leased to this worker, or None when there is none."""
        try:
            return self._call("GET", "/queue/poll", {"queue": queue or self.queue, "worker_id": self.worker_id})
        except ClientError as exc:
            if exc.status == 404:  # empty or disabled queue
                return None
            raise

    def heartbeat(self, status="idle", job_id=None, **extra):
        body = {"status": status, "hostname": socket.gethostname(), **extra}
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


def default_worker_id():
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, client, poll_interval=1.0, heartbeat_interval=5.0, stream_logs=False):
        self.client = client
        self.stream_logs = stream_logs  # every task's log records become `log` events
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.stopping = threading.Event()
        self.current = None  # the job being run
        self._beat_now = threading.Event()
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
        return max(0.1, min(self.heartbeat_interval, float(job.get("lease_seconds") or 60) / 3))

    def _heartbeats(self):
        while not self._beats_done.is_set():
            job = self.current
            try:
                if job is None:
                    self.client.heartbeat("stopping" if self.stopping.is_set() else "idle")
                else:
                    self.client.heartbeat("in_progress", job["job_id"], job_title=job.get("job_title"))
            except (requests.RequestException, ClientError) as exc:
                log.warning("worker %s: heartbeat failed: %s", self.client.worker_id, exc)
            self._beat_now.wait(self._interval())
            self._beat_now.clear()

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
                    job = self.client.poll()
                except (requests.RequestException, ClientError) as exc:
                    if isinstance(exc, ClientError) and exc.status == 423:
                        # disabled by an admin: not a fault; ask again every second or so
                        log.info("worker %s: disabled by the server", self.client.worker_id)
                        self.stopping.wait(min(5.0, max(self.poll_interval, 1.0)))
                        continue
                    # server down or failing: back off and retry
                    log.warning("worker %s: poll failed: %s", self.client.worker_id, exc)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = self.poll_interval
                if job is None:
                    if burst:
                        break
                    self.stopping.wait(self.poll_interval)
                    continue
                self.run_job(job)
        finally:
            self._beats_done.set()
            self._beat_now.set()
            beats.join(timeout=5)
        log.info("worker %s: stopped", self.client.worker_id)

    def run_job(self, job):
        job_id = job["job_id"]
        self.current = job
        self._beat_now.set()  # re-time heartbeats to this job's lease
        started = datetime.now(UTC)
        log.info(
            "worker %s: job %s %r attempt %s", self.client.worker_id, job_id, job.get("job_title"), job.get("attempt")
        )
        results, failed, message = [], False, None
        # job events: job["emit"](type, data), job["stream_logs"]() (emitter.py); posted before completing
        events = JobEvents(self.client.copy(), job, self.stream_logs)
        job = {**job, "emit": events.emitter.emit, "stream_logs": events.stream_logs}
        for i, task in enumerate(job.get("tasks") or []):
            module = task.get("module")
            try:
                results.append(task_registry.get_task(module)(task.get("data"), job))
            except Exception as exc:  # any task error fails the job, with its message on record
                failed, message = True, f"tasks[{i}] {module}: {exc.__class__.__name__}: {exc}"
                log.warning("worker %s: job %s failed: %s", self.client.worker_id, job_id, message)
                break
        events.close()
        ended = datetime.now(UTC)
        info = {
            "worker_id": self.client.worker_id,
            "worker": socket.gethostname(),
            "start_time": started.isoformat(),
            "end_time": ended.isoformat(),
            "runtime": str(ended - started),
            "completed": not failed,
        }
        self.current = None
        try:
            self.client.complete(job_id, failed=failed, info=info, result=results, message=message)
            log.info("worker %s: job %s %s", self.client.worker_id, job_id, "failed" if failed else "completed")
        except ClientError as exc:  # 409: the lease ended meanwhile; the job is someone else's now
            log.warning("worker %s: could not complete job %s: %s", self.client.worker_id, job_id, exc)
        except requests.RequestException as exc:
            log.warning("worker %s: could not reach the server to complete %s: %s", self.client.worker_id, job_id, exc)
        self._beat_now.set()


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
):
    known = task_registry.load_task_modules(task_modules)
    client = JobClient(url, token, queue, worker_id)
    log.info("worker %s: queue %r at %s, tasks: %s", client.worker_id, queue, url, ", ".join(known))
    Worker(client, poll_interval, heartbeat_interval, stream_logs).run(burst=burst)


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
