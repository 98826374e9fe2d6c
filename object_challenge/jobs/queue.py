"""The queue's hot state in Redis: order, leases, attempts.

Every change is one Lua script (``scripts/*.lua`` beside this file, ``lib.lua`` prepended),
so no two callers can interleave a read and a write: two concurrent polls can never
lease one job, and a lease that expires is requeued exactly once. The scripts keep
only what the next decision needs; the job documents live in MongoDB (store.py).

A job's life in Redis::

    enqueue -> queued --poll--> running --complete--> completed | failed  (-> MongoDB, hash deleted)
                 ^                 |
                 '--lease expired--'  (attempt < max_attempts; else failed)
"""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from object_challenge.core.errors import BadRequest
from object_challenge.core.extensions import redis_now_ms
from object_challenge.jobs import keys
from object_challenge.jobs.store import FINAL_STATES, iso_from_ms, utcnow

HERE = Path(__file__).resolve().parent / "scripts"
EXPIRE_BATCH = 100  # expired leases handled per poll / per scheduler call
CLOCK_READ_S = 5.0  # how often a process reads Redis's clock (in between: its monotonic clock)
POLL_SCAN = 1000  # waiting jobs a poll with `modules` looks at from the head (docs/jobs.md)


def _decode(raw):
    data = json.loads(raw)
    # cjson renders an empty Lua table as {}; every list field may come back that way
    for name in ("expired", "released", "cancel"):
        if name in data and not data[name]:
            data[name] = []
    return data


class Scripts:
    """The Lua scripts, registered once per Redis client (EVALSHA, reloaded on NOSCRIPT)."""

    NAMES = (
        "enqueue",
        "poll",
        "heartbeat",
        "complete",
        "requeue",
        "delete",
        "clear",
        "forget_worker",
        "release",
        "cancel",
    )

    def __init__(self, client):
        lib = (HERE / "lib.lua").read_text()
        for name in self.NAMES:
            source = lib + "\n" + (HERE / f"{name}.lua").read_text()
            setattr(self, name, client.register_script(source))

    def load(self, client, names=("poll", "complete")):
        """SCRIPT LOAD (the gateway runs these by SHA1 only)."""
        for name in names:
            client.script_load(getattr(self, name).script)


@dataclass
class Lease:
    job_id: str
    attempt: int
    worker: str
    lease_until_ms: int
    doc: str  # the job's document (JSON)
    history: list  # history events (JSON) appended since


class JobQueue:
    """One Redis client's view of every named queue."""

    def __init__(self, client, lease_seconds, max_attempts, client_expiry, poll_scan=POLL_SCAN):
        self.redis = client
        self.poll_scan = int(poll_scan)
        self.lease_ms = int(lease_seconds * 1000)
        self.max_attempts = int(max_attempts)
        self.client_expiry = int(client_expiry)
        self.scripts = Scripts(client)
        self._clock = (float("-inf"), 0)  # (monotonic s, Redis ms) of the last TIME
        self._clock_lock = threading.Lock()

    # -- queues ----------------------------------------------------------
    def enqueue_many(self, queue, jobs):
        """Append jobs ``(id, max_attempts, attempt, modules, not_before_ms, doc)`` all at
        once (or, if one id is taken, none); returns how many were enqueued."""
        args = [keys.PREFIX, queue]
        for job_id, max_attempts, attempt, modules, not_before, doc in jobs:
            args += [
                job_id,
                max_attempts or self.max_attempts,
                attempt or 0,
                module_set(modules),
                int(not_before or 0),
                json.dumps(doc),
                answer_template(doc),
            ]
        return self.scripts.enqueue(keys=[keys.queue(queue), keys.QUEUES], args=args)

    def poll(self, queue, worker="", modules=None):
        """Lease the oldest job of ``queue`` whose every module is in ``modules`` (None: any);
        ``(Lease | None, refused | None, expired events)``."""
        result = _decode(
            self.scripts.poll(
                keys=[keys.queue(queue), keys.queue_attributes(queue), keys.worker_attributes(worker or "-")],
                args=[
                    keys.PREFIX,
                    worker or "",
                    self.lease_ms,
                    EXPIRE_BATCH,
                    module_set(modules or ()),
                    self.poll_scan,
                    queue,
                ],
            )
        )
        job = result.get("job")
        lease = None
        if job:
            lease = Lease(
                job["id"], int(job["attempt"]), job["worker"], int(job["lease_until"]), job["doc"], job["history"] or []
            )
        return lease, result.get("refused"), result["expired"]

    def waiting(self, queue, start=0, stop=-1):
        """Ids waiting in ``queue``, head first, then the delayed ones (soonest first)."""
        ids = self.redis.lrange(keys.queue(queue), start, stop)
        if stop < 0 or len(ids) < stop - start + 1:
            more = -1 if stop < 0 else stop - start - len(ids)
            ids += self.redis.zrange(keys.delayed(queue), 0, more)
        return ids

    def length(self, queue):
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(keys.queue(queue))
        pipe.zcard(keys.delayed(queue))
        return sum(pipe.execute())

    def clear(self, queue):
        """Empty ``queue``; returns the ids that were waiting."""
        return self.scripts.clear(
            keys=[keys.queue(queue), keys.delayed(queue), keys.queue_modules(queue)], args=[keys.PREFIX]
        )

    def stranded(self, queue):
        """Waiting jobs that need a module no live worker declared (a worker that declared
        none counts as able to run anything)."""
        now = self.now_ms()
        live = self.redis.zrangebyscore(keys.WORKERS, now, "+inf")
        counts = self.redis.hgetall(keys.queue_modules(queue))
        declared = self.redis.hmget(keys.WORKER_MODULES, live) if live else []
        if any(d is None for d in declared):
            return 0
        can = {m for d in declared for m in d.split(",") if m}
        return sum(int(n) for mods, n in counts.items() if not set(filter(None, mods.split(","))) <= can)

    def queues(self):
        return sorted(self.redis.smembers(keys.QUEUES))

    def attributes(self, queue):
        raw = self.redis.hgetall(keys.queue_attributes(queue))
        return decode_attributes(raw)

    def set_attributes(self, queue, changes):
        if changes:
            self.redis.hset(keys.queue_attributes(queue), mapping={k: json.dumps(v) for k, v in changes.items()})
        return self.attributes(queue)

    # -- one job -----------------------------------------------------------
    def live_many(self, job_ids):
        """{id: the job's hash (queue, state, attempt, worker, lease_until, ...) or {}}."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        return dict(zip(job_ids, pipe.execute(), strict=True))

    def read(self, job_ids, pipe=None, skip=0):
        """{id: the job's document as Redis holds it, or None} (one round trip; ``pipe``
        may hold ``skip`` commands before)."""
        pipe = pipe or self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
            pipe.lrange(keys.history(job_id), 0, -1)
        raw = pipe.execute()[skip:]
        return {job_id: from_redis(raw[2 * i], raw[2 * i + 1]) for i, job_id in enumerate(job_ids)}

    def take_unrecorded(self, limit=200):
        """(finished jobs, changed active jobs) whose MongoDB record is behind, as documents
        (None for one Redis no longer has). Changed jobs lose their mark atomically with
        the read, so a change after it marks them again; finished ones keep theirs until
        ``forget_recorded``."""
        finished = self.redis.srandmember(keys.FINISHED, limit)
        changed = self.redis.srandmember(keys.DIRTY, limit)
        if not finished and not changed:
            return [], []
        pipe = self.redis.pipeline(transaction=True)
        if changed:
            pipe.srem(keys.DIRTY, *changed)
        docs = self.read(finished + changed, pipe, skip=1 if changed else 0)
        return [docs[i] for i in finished], [docs[i] for i in changed]

    def mark_changed(self, job_ids):
        """Mark again (a record write failed)."""
        if job_ids:
            self.redis.sadd(keys.DIRTY, *job_ids)

    def forget_recorded(self, job_ids):
        """MongoDB has these finished jobs: Redis forgets them."""
        if not job_ids:
            return
        pipe = self.redis.pipeline()
        for job_id in job_ids:
            pipe.delete(keys.job(job_id), keys.history(job_id))
        pipe.srem(keys.FINISHED, *job_ids)
        pipe.srem(keys.DIRTY, *job_ids)
        pipe.execute()

    def running(self):
        """Running jobs (each holds a lease)."""
        return self.redis.zcard(keys.LEASES)

    def unrecorded(self):
        """How many jobs' records are behind (finished, changed)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.scard(keys.FINISHED)
        pipe.scard(keys.DIRTY)
        return tuple(pipe.execute())

    def complete(self, job_id, worker, failed, result, reported_worker=""):
        """Finish a running job; returns the script's answer (see complete.lua)."""
        return _decode(
            self.scripts.complete(
                keys=[keys.job(job_id)],
                args=[
                    keys.PREFIX,
                    job_id,
                    worker or "",
                    "failed" if failed else "completed",
                    json.dumps(result),
                    reported_worker or "",
                ],
            )
        )

    def release(self, job_id, worker, retry_after_ms, reason):
        """Give a running job back; returns the script's answer (see release.lua)."""
        return _decode(
            self.scripts.release(
                keys=[keys.job(job_id)], args=[keys.PREFIX, job_id, worker or "", int(retry_after_ms), reason]
            )
        )

    def cancel(self, job_id):
        """Cancel a job; returns the script's answer (see cancel.lua)."""
        return _decode(self.scripts.cancel(keys=[keys.job(job_id)], args=[keys.PREFIX, job_id]))

    def delete(self, job_id):
        """Forget a job; returns the state Redis had for it, or None."""
        return self.scripts.delete(keys=[keys.job(job_id)], args=[keys.PREFIX, job_id]) or None

    def requeue_expired(self, limit=EXPIRE_BATCH):
        """Expired leases back to their queues; returns (events, workers expired)."""
        result = _decode(self.scripts.requeue(args=[keys.PREFIX, limit, keys.QUEUES]))
        return result["expired"], result["workers_expired"]

    # -- workers -----------------------------------------------------------
    def heartbeat(self, worker, status_json, job_id="", running=None):
        """Record a heartbeat; returns {"extended": {job id: deadline ms}, "claimed": id?}.

        ``running``: the job ids the worker says it runs (None: it does not say, as the
        reference worker; then every lease it holds is extended)."""
        listed = ["0"] if running is None else ["1", *running]
        result = _decode(
            self.scripts.heartbeat(
                keys=[keys.worker_status(worker), keys.worker_jobs(worker)],
                args=[keys.PREFIX, worker, status_json, self.client_expiry, self.lease_ms, job_id or "", *listed],
            )
        )
        if not result.get("extended"):
            result["extended"] = {}
        return result

    def worker_modules(self, worker):
        """The modules ``worker`` declared on its last poll (None: it declared none)."""
        raw = self.redis.hget(keys.WORKER_MODULES, worker)
        return raw.split(",") if raw else None

    def forget_worker(self, worker):
        """Delete a worker; its leases end now. Returns (existed, released events)."""
        result = _decode(
            self.scripts.forget_worker(
                keys=[keys.worker_status(worker), keys.worker_attributes(worker), keys.worker_jobs(worker)],
                args=[keys.PREFIX, worker],
            )
        )
        return result["existed"], result["released"]

    def now_ms(self):
        """Milliseconds on Redis's clock (the one the scripts stamp with), read with TIME at
        most every CLOCK_READ_S and carried forward by this process's monotonic clock in
        between, so that an enqueue costs one Redis round trip, not two."""
        at, ms = self._clock
        now = time.monotonic()
        if now - at >= CLOCK_READ_S:
            with self._clock_lock:
                at, ms = self._clock = (time.monotonic(), redis_now_ms(self.redis))
            now = at
        return ms + int((now - at) * 1000)


def history(doc, raws):
    """The document's history plus the events Redis appended (``at`` in ms -> ISO)."""
    events = list(doc.get("history") or [])
    for raw in raws:
        event = json.loads(raw)
        if isinstance(event.get("at"), (int, float)):
            event["at"] = iso_from_ms(event["at"])
        if isinstance(event.get("not_before"), (int, float)):
            event["not_before"] = iso_from_ms(event["not_before"])
        events.append(event)
    return events


def from_redis(live, raws):
    """The job's document as Redis holds it (hash ``live`` and its history list), or None
    when Redis does not have its document."""
    if not live or "doc" not in live:
        return None
    doc = json.loads(live["doc"])
    doc["history"] = history(doc, raws)
    state = live.get("state") or doc.get("state")
    doc["state"] = state
    doc["attempt"] = int(live.get("attempt") or 0)
    doc["worker_id"] = live.get("worker") or None
    doc["lease_expires_at"] = iso_from_ms(live.get("lease_until"))
    doc["not_before"] = iso_from_ms(live.get("not_before")) if state == "queued" else None
    if live.get("cancel_requested") == "1":
        doc["cancel_requested"] = True
    if state in FINAL_STATES:
        result = json.loads(live["result"]) if live.get("result") else None
        if result is None:  # ended by lease expiry, release or cancel: no worker reported anything
            result = {"failed": True, "info": None, "result": None, "message": live.get("reason")}
        doc["result"] = result
        doc["info"] = result.get("info")
        doc["finished_at"] = iso_from_ms(live.get("finished_at")) or utcnow()
    return doc


# The fields of a job's answer that change while it lives (queue.from_redis and
# Jobs.poll set them); everything else in its document is fixed at enqueue.
LIVE_FIELDS = frozenset({"state", "attempt", "worker_id", "lease_expires_at", "not_before", "history", "lease_seconds"})
FINAL_FIELDS = ("result", "info", "finished_at", "cancel_requested")  # the template's second part, in order
TEMPLATE_SEP = "\x00"  # never in json.dumps output (it escapes control characters)


def answer_template(doc):
    """The job's answer, rendered once here for the gateway (lua/oc/job_lease.lua): three
    JSON fragments joined by NUL -- the object's fixed members without its closing brace,
    the members a final job replaces (result, info, finished_at as the document has them),
    and the document's history events -- so that the gateway fills in the live fields
    without decoding (and re-encoding) the job's data. The gateway's answer and
    :func:`from_redis` / ``Jobs.poll`` give the same document (tests/jobs/test_jobs_lease_path.py)."""
    fixed = {k: v for k, v in doc.items() if k not in LIVE_FIELDS and k not in FINAL_FIELDS}
    final = {k: doc[k] for k in FINAL_FIELDS if k in doc}
    return TEMPLATE_SEP.join(
        (json.dumps(fixed)[:-1], json.dumps(final)[1:-1], json.dumps(doc.get("history") or [])[1:-1])
    )


def module_set(modules):
    """The canonical form of a set of module names: sorted, unique, comma-joined."""
    return ",".join(sorted(set(modules)))


def attribute_changes(changes):
    """A PATCH body of queue or worker attributes, checked: ``{"disabled": bool, ...}``."""
    if not isinstance(changes, dict):
        raise BadRequest('send a JSON object such as {"disabled": true}', code="bad_attributes")
    if "disabled" in changes and not isinstance(changes["disabled"], bool):
        raise BadRequest("disabled must be true or false", code="bad_attributes")
    return changes


def decode_attributes(raw):
    attributes = {"disabled": False}
    for name, value in raw.items():
        try:
            attributes[name] = json.loads(value)
        except ValueError:
            attributes[name] = value
    return attributes
