"""The queue's operations, as the views and the scheduler call them.

Each operation is one atomic step in Redis (queue.py) followed by its record in
MongoDB (store.py). Reads overlay the live Redis state on the record, so what a
client reads is always the state Redis decided, even if the record lags a step.
"""

import json
import logging
import re
import uuid

from flask import current_app

from object_challenge.core.errors import BadRequest
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
)
from object_challenge.jobs.queue import JobQueue
from object_challenge.jobs.store import FINAL_STATES, JobStore, iso_from_ms, public, utcnow

log = logging.getLogger(__name__)

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
MODULE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_MODULES = 64  # names in one poll's ?modules=
MAX_BULK = 1000  # jobs in one POST /queue {"jobs": [...]}
MAX_DELAY_S = 86400  # POST /queue "delay_s"
MAX_RETRY_AFTER_S = 3600  # POST /jobs/{id}/release "retry_after_s"


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
        clean.append({"module": task["module"], "data": task.get("data", {})})
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


def finished_fields(live):
    """The fields of a job that Redis has finished (completed, or failed) from its hash."""
    result = json.loads(live["result"]) if live.get("result") else None
    if result is None:  # failed by lease expiry: no worker reported anything
        result = {"failed": True, "info": None, "result": None, "message": live.get("reason")}
    return {
        "state": live["state"],
        "attempt": int(live.get("attempt") or 0),
        "worker_id": live.get("worker") or None,
        "lease_expires_at": None,
        "finished_at": iso_from_ms(live.get("finished_at")) or utcnow(),
        "result": result,
        "info": result.get("info"),
    }


def overlay(doc, live):
    """The record with the live Redis state on top (Redis decides while a job is active)."""
    doc = public(doc)
    if doc is None or not live or "state" not in live:
        return doc
    if live["state"] in FINAL_STATES:  # finished a moment ago; the record follows
        doc.update(finished_fields(live))
        return doc
    doc["state"] = live["state"]
    doc["attempt"] = int(live.get("attempt") or 0)
    doc["worker_id"] = live.get("worker") or doc.get("worker_id")
    doc["lease_expires_at"] = iso_from_ms(live.get("lease_until"))
    doc["not_before"] = iso_from_ms(live.get("not_before")) if live["state"] == "queued" else None
    if live.get("cancel_requested") == "1":
        doc["cancel_requested"] = True
    return doc


class Jobs:
    def __init__(self, queue, store, config):
        self.queue = queue
        self.store = store
        self.config = config

    # -- queues ------------------------------------------------------------
    def enqueue(self, body, queue, owner):
        """POST /queue: one job (returns its document) or a bulk ``{"jobs": [...]}``
        (returns ``{"job_ids", "count"}``); all of a bulk or none."""
        parsed, bulk = parse_jobs(body)
        now_ms = self.queue.now_ms()
        now = iso_from_ms(now_ms)
        docs = []
        for title, tasks, max_attempts, delay_s in parsed:
            event = {"event": "enqueued", "at": now, "queue": queue}
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
                "not_before": iso_from_ms(now_ms + int(delay_s * 1000)) if delay_s else None,
                "owner_id": owner.user_id,
                "owner_name": owner.name,
                "result": None,
                "info": None,
                "finished_at": None,
                "history": [event],
            }
            if delay_s:
                event["delay_s"] = delay_s
            docs.append(doc)
        # the records first: a job Redis hands out always has a document behind it
        self.store.insert_many(docs)
        try:
            self.queue.enqueue_many(
                queue,
                [
                    (d["job_id"], d["max_attempts"], 0, d["modules"], now_ms + int(p[3] * 1000) if p[3] else 0)
                    for d, p in zip(docs, parsed, strict=True)
                ],
            )
        except Exception:
            self.store.delete_active([d["job_id"] for d in docs])
            raise
        if bulk:
            return {"job_ids": [d["job_id"] for d in docs], "count": len(docs)}
        return public(docs[0])

    def list_queue(self, queue, limit=None):
        ids = self.queue.waiting(queue, 0, -1 if limit is None else limit - 1)
        docs = self.store.get_active_many(ids)
        live = self.queue.live_many(ids)
        return [overlay(docs[i], live[i]) for i in ids if i in docs]

    def clear(self, queue):
        ids = self.queue.clear(queue)
        self.store.delete_active(ids)
        return len(ids)

    def poll(self, queue, worker, modules=None):
        for _ in range(10):
            lease, refused, expired = self.queue.poll(queue, worker, modules)
            self.record_expired(expired)
            if refused == "queue_disabled":
                raise QueueDisabled(f'queue {queue!r} is disabled; an admin can PATCH /queue {{"disabled": false}}')
            if refused == "worker_disabled":
                raise WorkerDisabled(f"worker {worker!r} is disabled; an admin can PATCH /workers/{worker}")
            if lease is None:
                raise NoJobAvailable(f"no job is waiting in queue {queue!r}")
            now = utcnow()
            doc = self.store.record(
                lease.job_id,
                {
                    "state": "running",
                    "attempt": lease.attempt,
                    "worker_id": lease.worker or None,
                    "lease_expires_at": iso_from_ms(lease.lease_until_ms),
                    "leased_at": now,
                },
                {"event": "leased", "at": now, "attempt": lease.attempt, "worker_id": lease.worker or None},
            )
            if doc is not None:
                doc = public(doc)
                doc["lease_seconds"] = self.queue.lease_ms / 1000
                return doc
            # Redis had a job MongoDB does not (deleted meanwhile): forget it, take the next
            log.warning("job %s leased but has no record; dropping it", lease.job_id)
            self.queue.delete(lease.job_id)
        raise NoJobAvailable(f"no job is waiting in queue {queue!r}")

    # -- one job -------------------------------------------------------------
    def get(self, job_id):
        live = self.queue.live(job_id)  # first: a job moves Redis -> MongoDB, never back
        doc = self.store.get(job_id)
        if doc is None:
            raise JobNotFound(job_id)
        if doc.get("state") in FINAL_STATES:
            return public(doc)
        if not live:  # finished and recorded between the two reads (or Redis lost it)
            return public(self.store.get(job_id) or doc)
        return overlay(doc, live)

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
        info = body.get("info")
        reported = info.get("worker_id") if isinstance(info, dict) else None
        reported = reported if isinstance(reported, str) and WORKER_ID.match(reported) else ""
        answer = self.queue.complete(job_id, worker, failed, result, reported)
        self._refused(job_id, worker, answer)
        return self.sync_finished([job_id])[0]

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
        event = answer.get("event")
        if event:
            self.record_expired([event])
        return self.get(job_id)

    def cancel(self, job_id):
        """Cancel a job: a queued one at once, a running one through its worker."""
        answer = self.queue.cancel(job_id)
        refused = answer.get("refused")
        if refused == "unknown":
            doc = self.store.get(job_id)
            if doc is None:
                raise JobNotFound(job_id)
            raise JobFinished(f"job {job_id} is already {doc.get('state')}", state=doc.get("state"))
        if refused == "finished":
            raise JobFinished(f"job {job_id} is already {answer['state']}", state=answer["state"])
        if answer["outcome"] == "cancelled":
            return self.sync_finished([job_id])[0]
        now = utcnow()
        self.store.record(job_id, {"cancel_requested": True}, {"event": "cancel_requested", "at": now})
        return self.get(job_id)

    def _refused(self, job_id, worker, answer):
        refused = answer.get("refused")
        if refused == "unknown":
            doc = self.store.get(job_id)
            if doc is None:
                raise JobNotFound(job_id)
            raise JobNotRunning(f"job {job_id} is already {doc.get('state')}", state=doc.get("state"))
        if refused == "not_running":
            raise JobNotRunning(
                f"job {job_id} is {answer['state']}, not running; its lease ended", state=answer["state"]
            )
        if refused == "not_holder":
            raise NotLeaseHolder(
                f"job {job_id} is leased to worker {answer['worker']!r}, not {worker!r}", holder=answer["worker"]
            )

    # -- records of what Redis decided ------------------------------------------
    def record_expired(self, events):
        for event in events:
            if event["outcome"] in FINAL_STATES:
                self.sync_finished([event["id"]])
                continue
            now = utcnow()
            self.store.record(
                event["id"],
                {"state": "queued", "worker_id": None, "lease_expires_at": None},
                {
                    "event": "requeued",
                    "at": now,
                    "reason": event["reason"],
                    "attempt": event["attempt"],
                    "worker_id": event["worker"] or None,
                },
            )

    def sync_finished(self, job_ids=None):
        """Write finished jobs (state decided in Redis) to their final collection."""
        docs = []
        for job_id in self.queue.finished() if job_ids is None else job_ids:
            live = self.queue.live(job_id)
            state = live.get("state")
            if state not in FINAL_STATES:  # deleted meanwhile: nothing to record
                self.queue.unmark_finished(job_id)
                continue
            fields = finished_fields(live)
            event = {
                "event": state,
                "at": fields["finished_at"],
                "attempt": fields["attempt"],
                "worker_id": fields["worker_id"],
            }
            if live.get("reason"):
                event["reason"] = live["reason"]
            doc = self.store.finish(job_id, fields, event)
            self.queue.forget_finished(job_id)
            job_events.archive(job_id)  # its events follow it to MongoDB (a no-op without events)
            if doc is not None:
                docs.append(public(doc))
        return docs

    def recover(self):
        """After Redis lost its data: queue again every job MongoDB has as queued or
        running that Redis does not know, oldest first, keeping its attempt count (a
        running job's lease was lost with Redis, as if it had expired). Returns the ids."""
        recovered = []
        for doc in self.store.queued.find({"state": {"$in": ["queued", "running"]}}).sort("added", 1):
            if self.queue.live(doc["_id"]):
                continue
            if self.queue.enqueue(
                doc["_id"],
                doc.get("queue") or self.config["REDIS_QUEUE_NAME"],
                doc.get("max_attempts"),
                int(doc.get("attempt") or 0),
                doc.get("modules") or sorted({t.get("module", "") for t in doc.get("tasks") or []}),
            ):
                now = utcnow()
                self.store.record(
                    doc["_id"],
                    {"state": "queued", "worker_id": None, "lease_expires_at": None},
                    {
                        "event": "recovered",
                        "at": now,
                        "attempt": doc.get("attempt"),
                        "reason": "Redis had lost the job",
                    },
                )
                recovered.append(doc["_id"])
        return recovered

    def tick(self):
        """The scheduler's periodic step: expired leases, stopped workers, unrecorded finishes."""
        events, workers_gone = self.queue.requeue_expired()
        self.record_expired(events)
        self.sync_finished()
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
        service = Jobs(queue, JobStore.from_config(mongo.cx, cfg), cfg)
        app.extensions["oc_jobs"] = service
    return service


def tick():
    """Scheduler entry (``object_challenge.jobs.service:tick``)."""
    events, workers_gone = jobs().tick()
    if events or workers_gone:
        log.info("jobs tick: %d leases ended, %d workers expired", len(events), workers_gone)
