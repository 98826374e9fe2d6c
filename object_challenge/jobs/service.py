"""The queue's operations, as the views and the scheduler call them.

Redis is the source of truth of a live job: each operation is one atomic step there
(queue.py's scripts), which also keeps the job's document and history. MongoDB
(store.py) holds the records: the recorder (``Jobs.record``, run by the scheduler
every 0.5 s) writes the jobs Redis marked as changed in batches, and moves finished
jobs to their final collection, after which Redis forgets them. A read answers from
Redis while Redis has the job, else from MongoDB: never a stale state.
"""

import json
import logging
import math
import re
import time
import uuid

from flask import current_app

from object_challenge.accounts.models import User
from object_challenge.core.errors import BadRequest, Forbidden, store_of
from object_challenge.core.extensions import mongo, redis
from object_challenge.jobs import events as job_events
from object_challenge.jobs.errors import (
    JobFinished,
    JobNotFound,
    JobNotRunning,
    NoJobAvailable,
    NotLeaseHolder,
    QueueDisabled,
    WorkerDisabled,
    refuse_gone,
)
from object_challenge.jobs.queue import JobQueue, history
from object_challenge.jobs.store import FINAL_STATES, JobStore, iso_from_ms, public, utcnow

log = logging.getLogger(__name__)

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
MODULE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_MODULES = 64  # names in one poll's ?modules=
MAX_BULK = 1000  # jobs in one POST /queue {"jobs": [...]}
MAX_DELAY_S = 86400  # POST /queue "delay_s"
MAX_RETRY_AFTER_S = 3600  # POST /jobs/{id}/release "retry_after_s"
MAX_DEPTH = 64  # nesting of a task's data (lists and objects)
INT64 = (-(2**63), 2**63 - 1)  # integers MongoDB can store
RECORD_BATCH = 50  # jobs written to MongoDB per batch (mongoeco under load: ~0.1 s each)
RECORD_BUDGET_S = 0.4  # the recorder's time per scheduler call


def modules_param(value):
    """``?modules=a,b,c`` -> ["a", "b", "c"]; None when absent (the worker can run anything)."""
    if value is None or not value.strip():
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if len(names) > MAX_MODULES or not all(MODULE_NAME.match(n) for n in names):
        raise BadRequest(
            f"modules is a comma-separated list of up to {MAX_MODULES} names of letters, digits and _.-",
            code="bad_modules",
        )
    return names


def _seconds(body, name, maximum, code):
    value = body.get(name, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= maximum:
        raise BadRequest(f"{name} must be a number of seconds from 0 to {maximum}", code=code)
    return value


_BOUND = {}  # user id -> (worker id prefix or None, read at)
BOUND_TTL_S = 10.0


def bound_prefix(identity):
    """The worker id prefix a bound worker token may act for, or None (unbound: any id).
    Read from the user's record, cached per process for BOUND_TTL_S."""
    if identity.role != "worker":
        return None
    cached = _BOUND.get(identity.user_id)
    if cached is None or time.monotonic() - cached[1] > BOUND_TTL_S:
        try:
            user = User.objects(user_id=identity.user_id).only("worker_prefix").first()
        except Exception as exc:
            if cached is None or store_of(exc) != "mongo":
                raise
            # MongoDB is down: the binding last read stays in force (asked again after
            # BOUND_TTL_S), so the queue keeps working from Redis
            log.warning("worker binding of user %s kept from the last read: mongo %s", identity.user_id, exc)
            cached = (cached[0], time.monotonic())
        else:
            cached = (user.worker_prefix if user else None, time.monotonic())
        _BOUND[identity.user_id] = cached
    return cached[0]


def check_bound(identity, worker):
    """A bound worker acts only for worker ids starting with its prefix (403 otherwise,
    and when it names no worker id at all)."""
    prefix = bound_prefix(identity)
    if prefix is not None and not (worker and worker.startswith(prefix)):
        raise Forbidden(
            f"this worker token may act only for worker ids starting with {prefix!r}; send ?worker_id={prefix}...",
            code="worker_not_bound",
        )


def queue_name(value=None):
    name = value or current_app.config["REDIS_QUEUE_NAME"]
    if not QUEUE_NAME.match(name):
        raise BadRequest("queue names are 1-64 characters of letters, digits and _.:-", code="bad_queue")
    return name


def worker_id(value, required=False):
    if not value:
        if required:
            raise BadRequest("a worker id is required", code="bad_worker_id")
        return ""
    if not WORKER_ID.match(value):
        raise BadRequest("worker ids are 1-128 characters of letters, digits and _.:@-", code="bad_worker_id")
    return value


def check_data(value, depth=0):
    """What makes ``value`` unstorable (None when it is fine): deeper than MAX_DEPTH,
    an integer outside int64, a float that is not finite, a key with a NUL or a
    leading ``$``. Iterative, so hostile nesting cannot exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            if level > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            for key, child in item.items():
                if not isinstance(key, str) or "\x00" in key or key.startswith("$"):
                    return f"the key {key[:40]!r} has a NUL or starts with $"
                stack.append((child, level + 1))
        elif isinstance(item, list):
            if level > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                return "an integer is outside -2^63..2^63-1"
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite (no NaN or Infinity)"
    return None


def parse_job(body):
    """Validate a POST /queue body: ``{"job_title": str, "tasks": [{"module": str, "data": any}]}``."""
    if not isinstance(body, dict):
        raise BadRequest(
            'send a JSON object {"job_title": "...", "tasks": [{"module": "...", "data": ...}]}', code="bad_job"
        )
    title = body.get("job_title")
    if not isinstance(title, str) or not title.strip():
        raise BadRequest("job_title must be a non-empty string", code="bad_job")
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise BadRequest("tasks must be a non-empty list of {module, data}", code="bad_job")
    clean = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("module"), str) or not task["module"].strip():
            raise BadRequest(f"tasks[{i}] needs a module name (a non-empty string)", code="bad_job")
        data = task.get("data", {})
        problem = check_data(data)
        if problem:
            raise BadRequest(f"tasks[{i}].data: {problem}", code="bad_job")
        clean.append({"module": task["module"], "data": data})
    max_attempts = body.get("max_attempts")
    if max_attempts is not None and (type(max_attempts) is not int or not 1 <= max_attempts <= 100):
        raise BadRequest("max_attempts must be a whole number from 1 to 100", code="bad_job")
    delay_s = _seconds(body, "delay_s", MAX_DELAY_S, "bad_job")
    return title, clean, max_attempts, delay_s


def parse_jobs(body):
    """A POST /queue body: one job, or ``{"jobs": [job, ...]}`` (1..MAX_BULK). Returns
    (list of parsed jobs, bulk?). A bad job in a bulk names its ``index``; none is taken."""
    if isinstance(body, dict) and "jobs" in body:
        items = body["jobs"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BULK:
            raise BadRequest(f"jobs must be a list of 1 to {MAX_BULK} jobs", code="bad_job")
        parsed = []
        for i, item in enumerate(items):
            try:
                parsed.append(parse_job(item))
            except BadRequest as exc:
                raise BadRequest(f"jobs[{i}]: {exc.message}", code=exc.code, index=i) from None
        return parsed, True
    return [parse_job(body)], False


class Jobs:
    def __init__(self, queue, store, config, on_completed=()):
        self.queue = queue
        self.store = store
        self.config = config
        # (task module, callable(job document)) pairs: told of each completion a worker posted
        # for a job with that module (runs counts its verdicts there); registered by the
        # packages in app.extensions["oc.jobs.completed"]. The gateway leaves the completions
        # of these modules to this service (jobs/lease_path.py publishes which they are).
        self.on_completed = on_completed

    # -- queues ------------------------------------------------------------
    def enqueue(self, body, queue, owner):
        """POST /queue: one job (returns its document) or a bulk ``{"jobs": [...]}``
        (returns ``{"job_ids", "count"}``); all of a bulk or none. Redis holds the jobs
        from here on; the recorder writes their MongoDB records."""
        parsed, bulk = parse_jobs(body)
        now_ms = self.queue.now_ms()
        now = iso_from_ms(now_ms)
        docs, entries = [], []
        for title, tasks, max_attempts, delay_s in parsed:
            event = {"event": "enqueued", "at": now, "queue": queue}
            not_before = now_ms + int(delay_s * 1000) if delay_s else 0
            if delay_s:
                event["delay_s"] = delay_s
            doc = {
                "job_id": str(uuid.uuid4()),
                "job_title": title,
                "tasks": tasks,
                "modules": sorted({t["module"] for t in tasks}),
                "added": now,
                "queue": queue,
                "state": "queued",
                "attempt": 0,
                "max_attempts": max_attempts or self.queue.max_attempts,
                "worker_id": None,
                "lease_expires_at": None,
                "not_before": iso_from_ms(not_before) if not_before else None,
                "owner_id": owner.user_id,
                "owner_name": owner.name,
                "result": None,
                "info": None,
                "finished_at": None,
                "history": [event],
            }
            docs.append(doc)
            entries.append((doc["job_id"], doc["max_attempts"], 0, doc["modules"], not_before, doc))
        self.queue.enqueue_many(queue, entries)
        if bulk:
            return {"job_ids": [d["job_id"] for d in docs], "count": len(docs)}
        return public(docs[0])

    def list_queue(self, queue, limit=None):
        ids = self.queue.waiting(queue, 0, -1 if limit is None else limit - 1)
        found = self.queue.read(ids)
        missing = [i for i in ids if found.get(i) is None]
        docs = self.store.get_active_many(missing) if missing else {}
        return [found.get(i) or public(docs[i]) for i in ids if found.get(i) or i in docs]

    def clear(self, queue):
        ids = self.queue.clear(queue)
        self.store.delete_active(ids)
        return len(ids)

    def poll(self, queue, worker, modules=None):
        lease, refused, _expired = self.queue.poll(queue, worker, modules)
        if refused == "queue_disabled":
            raise QueueDisabled(f'queue {queue!r} is disabled; an admin can PATCH /queue {{"disabled": false}}')
        if refused == "worker_disabled":
            raise WorkerDisabled(f"worker {worker!r} is disabled; an admin can PATCH /workers/{worker}")
        if lease is None:
            raise NoJobAvailable(f"no job is waiting in queue {queue!r}")
        doc = json.loads(lease.doc)
        doc["history"] = history(doc, lease.history)
        doc.update(
            {
                "state": "running",
                "attempt": lease.attempt,
                "worker_id": lease.worker or None,
                "lease_expires_at": iso_from_ms(lease.lease_until_ms),
                "not_before": None,
                "lease_seconds": self.queue.lease_ms / 1000,
            }
        )
        return doc

    # -- one job -------------------------------------------------------------
    def get(self, job_id):
        doc = self.queue.read([job_id]).get(job_id)  # first: a job moves Redis -> MongoDB, never back
        if doc is not None:
            return doc
        doc = self.store.get(job_id)
        if doc is None:
            raise JobNotFound(job_id)
        return public(doc)

    def delete(self, job_id):
        had_live = self.queue.delete(job_id)
        removed = self.store.delete(job_id)
        if not had_live and not removed:
            raise JobNotFound(job_id)

    def complete(self, job_id, worker, body):
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest('send a JSON object {"failed": bool, "info": ...}', code="bad_completion")
        failed = body.get("failed", False)
        if not isinstance(failed, bool):
            raise BadRequest("failed must be true or false", code="bad_completion")
        result = {
            "failed": failed,
            "info": body.get("info"),
            "result": body.get("result"),
            "message": body.get("message"),
        }
        problem = check_data(result)
        if problem:
            raise BadRequest(f"the completion cannot be stored: {problem}", code="bad_completion")
        info = body.get("info")
        reported = info.get("worker_id") if isinstance(info, dict) else None
        reported = reported if isinstance(reported, str) and WORKER_ID.match(reported) else ""
        answer = self.queue.complete(job_id, worker, failed, result, reported)
        self._refused(job_id, worker, answer)
        doc = self.get(job_id)
        modules = {t.get("module") for t in doc.get("tasks") or () if isinstance(t, dict)}
        for module, hook in self.on_completed:
            if module not in modules:
                continue
            try:
                hook(doc)
            except Exception:  # a metric must never fail the completion it counts
                log.exception("completion hook %r failed for job %s", hook, job_id)
        return doc

    def release(self, job_id, worker, body):
        """The lease holder gives a running job back; returns the job (``queued``)."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest('send a JSON object {"reason": "...", "retry_after_s": n}', code="bad_release")
        reason = body.get("reason") or "released by its worker"
        if not isinstance(reason, str) or len(reason) > 1000:
            raise BadRequest("reason must be a string of up to 1000 characters", code="bad_release")
        retry_after = _seconds(body, "retry_after_s", MAX_RETRY_AFTER_S, "bad_release")
        answer = self.queue.release(job_id, worker, int(retry_after * 1000), reason)
        self._refused(job_id, worker, answer)
        return self.get(job_id)

    def cancel(self, job_id):
        """Cancel a job: a queued one at once, a running one through its worker."""
        answer = self.queue.cancel(job_id)
        refused = answer.get("refused")
        if refused == "unknown":
            refuse_gone(self.store, job_id, JobFinished, "job {job_id} is already {state}")
        if refused == "finished":
            raise JobFinished(f"job {job_id} is already {answer['state']}", state=answer["state"])
        return self.get(job_id)

    def _refused(self, job_id, worker, answer):
        refused = answer.get("refused")
        if refused == "unknown":
            refuse_gone(self.store, job_id, JobNotRunning, "job {job_id} is already {state}")
        if refused == "not_running":
            raise JobNotRunning(
                f"job {job_id} is {answer['state']}, not running; its lease ended", state=answer["state"]
            )
        if refused == "not_holder":
            raise NotLeaseHolder(
                f"job {job_id} is leased to worker {answer['worker']!r}, not {worker!r}", holder=answer["worker"]
            )

    def mine(self, owner_id, limit, offset=0):
        """(the caller's jobs, newest first, from MongoDB: behind Redis by the recorder's
        lag; total). Jobs Redis still has are shown in their live state."""
        found, total = self.store.owned(owner_id, limit, offset)
        live = self.queue.read([d["job_id"] for d in found])
        return [live.get(d["job_id"]) or d for d in found], total

    # -- the recorder: Redis -> MongoDB in batches ---------------------------------
    def record(self, budget_s=RECORD_BUDGET_S, batch=RECORD_BATCH):
        """Write the jobs whose record is behind: finished ones to their final collection
        (then Redis forgets them), active ones to ``queued``. Returns how many."""
        done = 0
        deadline = time.monotonic() + budget_s
        while True:
            finished, active = self.queue.take_unrecorded(batch)
            if not finished and not active:
                break
            final_docs = [d for d in finished if d is not None and d["state"] in FINAL_STATES]
            active_docs = [d for d in active if d is not None and d["state"] not in FINAL_STATES]
            try:
                self.store.write(final_docs, active_docs)
            except Exception:
                self.queue.mark_changed([d["job_id"] for d in active_docs])  # retried next time
                raise
            ids = [d["job_id"] for d in final_docs]
            self.queue.forget_recorded(ids)
            for job_id in ids:
                job_events.archive(job_id)  # its events follow it to MongoDB (a no-op without events)
            done += len(final_docs) + len(active_docs)
            if time.monotonic() > deadline:
                break
        return done

    def recover(self):
        """After Redis lost its data: queue again every job MongoDB has as queued or
        running that Redis does not know, oldest first, keeping its attempt count (a
        running job's lease was lost with Redis, as if it had expired). Returns the ids."""
        recovered = []
        now = utcnow()
        docs = list(self.store.queued.find({"state": {"$in": ["queued", "running"]}}).sort("added", 1))
        ids = [doc["_id"] for doc in docs]
        live = self.queue.live_many(ids) if ids else {}  # one Redis round trip, one MongoDB query
        final = self.store.final_ids(ids)  # per final collection: not one of each per job
        for doc in docs:
            if live[doc["_id"]] or doc["_id"] in final:
                continue
            doc = public(doc)
            doc.update({"state": "queued", "worker_id": None, "lease_expires_at": None, "not_before": None})
            doc.setdefault("history", []).append(
                {"event": "recovered", "at": now, "attempt": doc.get("attempt"), "reason": "Redis had lost the job"}
            )
            modules = doc.get("modules") or sorted({t.get("module", "") for t in doc.get("tasks") or []})
            entry = (doc["job_id"], doc.get("max_attempts"), int(doc.get("attempt") or 0), modules, 0, doc)
            if self.queue.enqueue_many(doc.get("queue") or self.config["REDIS_QUEUE_NAME"], [entry]):
                recovered.append(doc["job_id"])
        return recovered

    def tick(self):
        """The scheduler's periodic step: expired leases, due delayed jobs, stopped
        workers, then the records MongoDB is missing."""
        events, workers_gone = self.queue.requeue_expired()
        self.record()
        return events, workers_gone


def jobs():
    """The app's Jobs service (scripts registered once per app)."""
    app = current_app._get_current_object()
    service = app.extensions.get("oc_jobs")
    if service is None:
        cfg = app.config
        queue = JobQueue(
            redis.client, cfg["JOB_LEASE_SECONDS"], cfg["JOB_MAX_ATTEMPTS"], cfg["CLIENT_EXPIRY"], cfg["JOB_POLL_SCAN"]
        )
        completed = app.extensions.setdefault("oc.jobs.completed", [])
        service = Jobs(queue, JobStore.from_config(mongo.cx, cfg), cfg, on_completed=completed)
        app.extensions["oc_jobs"] = service
    return service


def tick():
    """Scheduler entry (``object_challenge.jobs.service:tick``)."""
    events, workers_gone = jobs().tick()
    if events or workers_gone:
        log.info("jobs tick: %d leases ended, %d workers expired", len(events), workers_gone)
