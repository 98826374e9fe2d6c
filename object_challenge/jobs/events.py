"""Job events: the output, progress and logs of a running job, for any task module.

A job's lease holder posts events (``POST /jobs/{id}/events``); owners, workers and
admins read them (``GET /jobs/{id}/events``, or live through the gateway's
``/events/stream``, lua/oc/job_events.lua). While the job is active its events live
in Redis; once it is final they move to MongoDB (collection ``events`` of
``MONGO_JOB_DB``, one document per job) and leave Redis.

**Ids.** An event's id is ``"<attempt:03d>-<seq:09d>"`` (``"002-000000017"``), so ids of a
job sort as strings, and every event of attempt 2 comes after every event of attempt 1.
``seq`` is the client's number for the event within its attempt (optional: without it the
event gets one past the attempt's last). An event whose id is not past the job's last id
is a retry of one already stored and is skipped, so a retried post with the same seqs
never duplicates. In Redis the events are a stream whose entry ids are ``attempt-seq``.

**Limits.** A job keeps at most ``JOB_EVENTS_MAX`` events and ``JOB_EVENTS_MAX_BYTES``
bytes (each event counted as its stored JSON), over all its attempts. A post that does
not fit stores the events that do, then answers 413 ``events_limit``; from then on the
job is ``events_truncated`` and every post with a new event answers 413 (a retry of events
already stored still answers 200).

This module never imports service.py (service.py may import it: ``archive(job_id)`` is
the hook for a job that just became final; the scheduler's ``archive_due`` does the
same for any final job, so events move even when the hook is not called).
"""

import bisect
import json
import logging
from pathlib import Path

from flask import current_app

from object_challenge.core.errors import BadRequest
from object_challenge.core.extensions import mongo, redis
from object_challenge.jobs import keys
from object_challenge.jobs.errors import (
    AttemptMismatch,
    EventsLimit,
    JobCancelled,
    JobNotRunning,
    NotLeaseHolder,
    refuse_gone,
)
from object_challenge.jobs.store import FINAL_STATES, JobStore, utcnow

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TYPES = ("stdout", "stderr", "system", "progress", "log")
STREAMS = ("stdout", "stderr", "system")  # these also carry "stream": type (the runs contract's name)
COLLECTION = "events"  # in MONGO_JOB_DB: {_id: job id, events: [event JSON strings], count, bytes, truncated}
MAX_SEQ = 999_999_999
MAX_ATTEMPT = 999
POST_MAX = 1000  # events per post
READ_MAX, READ_DEFAULT = 1000, 100
ARCHIVE_BATCH = 100  # jobs looked at per scheduler call


# -- ids -------------------------------------------------------------------------------
def event_id(attempt, seq):
    return f"{attempt:03d}-{seq:09d}"


def parse_id(value, name="after"):
    """``(attempt, seq)`` of an event id, None for "" (from the start); 400 otherwise."""
    if value in (None, ""):
        return None
    attempt, sep, seq = value.partition("-")
    if sep and attempt.isdigit() and seq.isdigit() and len(attempt) <= 3 and len(seq) <= 9:
        return int(attempt), int(seq)
    raise BadRequest(f"{name} is an event id such as 001-000000005 (or empty)", code=f"bad_{name}")


def _raw_id(raw):
    """The id at the start of a stored event's JSON ('{"id":"001-000000005",...')."""
    return raw[7:20]


# -- validation -------------------------------------------------------------------------
def parse_post(body):
    """``(attempt, [(seq or None, JSON body without its opening brace)])``; 400 when malformed."""
    if not isinstance(body, dict):
        raise BadRequest('send {"attempt": n, "events": [{"type": "stdout", "data": ...}]}', code="bad_events")
    attempt = body.get("attempt")
    if type(attempt) is not int or not 1 <= attempt <= MAX_ATTEMPT:
        raise BadRequest("attempt must be the job's attempt (a whole number from 1)", code="bad_events")
    items = body.get("events")
    if not isinstance(items, list) or len(items) > POST_MAX:
        raise BadRequest(f"events must be a list of at most {POST_MAX} events", code="bad_events")
    at = utcnow()
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") not in TYPES:
            raise BadRequest(f"events[{i}] needs a type: one of {', '.join(TYPES)}", code="bad_events", index=i)
        seq = item.get("seq")
        if seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ):
            raise BadRequest(f"events[{i}].seq must be a whole number from 0 to {MAX_SEQ}", code="bad_events", index=i)
        event = {"attempt": attempt, "type": item["type"], "data": item.get("data"), "at": at}
        if item["type"] in STREAMS:
            event["stream"] = item["type"]
        try:
            text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise BadRequest(f"events[{i}].data is not plain JSON (NaN?)", code="bad_events", index=i) from None
        parsed.append((seq, text[1:]))
    return attempt, parsed


class JobEvents:
    def __init__(self, client, store, collection, max_count, max_bytes):
        self.redis = client
        self.store = store
        self.collection = collection
        self.max_count = int(max_count)
        self.max_bytes = int(max_bytes)
        self.add_script = client.register_script((SCRIPTS / "events_add.lua").read_text())
        self.drop_script = client.register_script((SCRIPTS / "events_drop.lua").read_text())

    # -- writing ---------------------------------------------------------------------
    def post(self, job_id, worker, body):
        attempt, parsed = parse_post(body)
        args = [job_id, worker or "", attempt, self.max_count, self.max_bytes, keys.events_channel(job_id)]
        for seq, text in parsed:
            args += ["" if seq is None else seq, text]
        answer = json.loads(
            self.add_script(
                keys=[keys.job(job_id), keys.events(job_id), keys.events_meta(job_id), keys.EVENTS_JOBS], args=args
            )
        )
        refused = answer.get("refused")
        if refused == "unknown":
            refuse_gone(self.store, job_id, JobNotRunning, "job {job_id} is {state}, not running")
        if refused == "not_running":
            raise JobNotRunning(f"job {job_id} is {answer['state']}, not running", state=answer["state"])
        if refused == "not_holder":
            raise NotLeaseHolder(
                f"job {job_id} is leased to worker {answer['worker']!r}, not {worker!r}", holder=answer["worker"]
            )
        if refused == "attempt":
            raise AttemptMismatch(
                f"job {job_id} is on attempt {answer['attempt']}, not {attempt}", attempt=answer["attempt"]
            )
        if refused == "cancelled":
            raise JobCancelled(f"job {job_id} is being cancelled; stop the task", state=answer["state"])
        result = {"accepted": answer["accepted"], "duplicates": answer["duplicates"], "last_id": answer["last_id"]}
        if answer["accepted"]:
            self.redis.hincrby(keys.STATS, "events_posted", answer["accepted"])
        if answer["truncated"]:
            raise EventsLimit(
                f"job {job_id} keeps at most JOB_EVENTS_MAX={self.max_count} events and "
                f"JOB_EVENTS_MAX_BYTES={self.max_bytes} bytes; stop the task",
                **result,
            )
        return result

    # -- reading ---------------------------------------------------------------------
    def _redis_page(self, job_id, after, count):
        """Stored event JSON strings after ``after`` from Redis; None when Redis has no events of the job."""
        start = "-" if after is None else f"({after[0]}-{after[1]}"
        pipe = self.redis.pipeline()  # MULTI: the meta and the stream as of one moment
        pipe.exists(keys.events_meta(job_id))
        pipe.xrange(keys.events(job_id), start, "+", count=count)
        exists, entries = pipe.execute()
        if not exists:
            return None
        return [fields["e"] for _, fields in entries]

    def _mongo_page(self, job_id, after, count):
        doc = self.collection.find_one({"_id": job_id}, {"events": 1})
        raws = doc.get("events", []) if doc else []
        start = 0 if after is None else bisect.bisect_right(raws, event_id(*after), key=_raw_id)
        return raws[start : start + count]

    def page(self, job, after, limit):
        """``(event JSON strings, more)`` after ``after`` (parsed id) for ``job`` (its document)."""
        job_id = job["job_id"]
        raws = self._redis_page(job_id, after, limit + 1)
        # a job moves its events Redis -> MongoDB only once final: read Redis first, then MongoDB
        if raws is None:
            raws = self._mongo_page(job_id, after, limit + 1) if job["state"] in FINAL_STATES else []
        return raws[:limit], len(raws) > limit

    def read(self, job, after="", limit=READ_DEFAULT):
        """The ``GET /jobs/{id}/events`` answer."""
        parsed = parse_id(after)
        raws, more = self.page(job, parsed, limit)
        events = [json.loads(raw) for raw in raws]
        return {
            "events": events,
            "next": events[-1]["id"] if events else (after or ""),
            "state": job["state"],
            "done": job["state"] in FINAL_STATES and not more,
        }

    def sse(self, job, after=""):
        """Every event after ``after`` as Server-Sent Events, then ``event: end`` if the job is final.

        Returns ``(text, next id, done)``; the gateway's live stream uses it for its catch-up."""
        parsed = parse_id(after, "last_event_id")
        chunks, last = ["retry: 2000\n\n"], after or ""
        while True:
            raws, more = self.page(job, parsed, READ_MAX)
            for raw in raws:
                last = _raw_id(raw)
                chunks.append(f"id: {last}\ndata: {raw}\n\n")
            if not more:
                break
            parsed = parse_id(last)
        done = job["state"] in FINAL_STATES
        if done:
            chunks.append(f"event: end\ndata: {json.dumps(end_data(job))}\n\n")
        return "".join(chunks), last, done

    def truncated(self, job_id):
        return self.redis.hget(keys.events_meta(job_id), "truncated") == "1"

    # -- archiving -------------------------------------------------------------------
    def archive(self, job_id):
        """Move a final job's events from Redis to MongoDB. Returns how many moved (0: none in
        Redis), or None when the job is not final in MongoDB yet (try again later)."""
        if not self.redis.exists(keys.events_meta(job_id)):
            return 0
        if self.redis.exists(keys.job(job_id)):
            return None  # Redis still has the job: its MongoDB record is not final yet (the recorder's lag)
        doc = self.store.get(job_id)
        if doc is None:
            # a finish moving the record between the collections can hide it from one read: look again
            if self.redis.exists(keys.job(job_id)) or self.store.get(job_id) is not None:
                return None
            self.delete(job_id)  # the job was deleted
            return 0
        state = doc.get("state")
        if state not in FINAL_STATES or state not in self.store.final:
            return None
        pipe = self.redis.pipeline()
        pipe.hgetall(keys.events_meta(job_id))
        pipe.xrange(keys.events(job_id), "-", "+")
        meta, entries = pipe.execute()
        if not meta:  # another archive (the completion's hook, the scheduler) moved them meanwhile
            return 0
        raws = [fields["e"] for _, fields in entries]
        truncated = meta.get("truncated") == "1"
        self.collection.replace_one(
            {"_id": job_id},
            {
                "_id": job_id,
                "job_id": job_id,
                "events": raws,
                "count": len(raws),
                "bytes": int(meta.get("bytes") or 0),
                "last_id": meta.get("last", ""),
                "truncated": truncated,
                "archived_at": utcnow(),
            },
            upsert=True,
        )
        self.store.final[state].update_one(
            {"_id": job_id}, {"$set": {"events_truncated": truncated, "events_count": len(raws)}}
        )
        if not self.drop_script(
            keys=[keys.events(job_id), keys.events_meta(job_id), keys.EVENTS_JOBS], args=[job_id, len(raws)]
        ):
            return None  # cannot happen for a final job; the next pass archives again
        return len(raws)

    def archive_due(self, limit=ARCHIVE_BATCH):
        """The scheduler's pass: archive the events of jobs that are final. Returns how many jobs."""
        ids = self.redis.srandmember(keys.EVENTS_JOBS, limit)
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "state")
        done = 0
        for job_id, state in zip(ids, pipe.execute(), strict=True):
            if state is not None and state not in FINAL_STATES:
                continue  # still active (or a state this module does not know as final yet)
            try:
                if self.archive(job_id) is not None:
                    done += 1
            except Exception:  # one job's failure must not stop the others
                log.exception("archiving the events of job %s failed", job_id)
        return done

    def delete(self, job_id):
        """Forget a job's events everywhere (the job was deleted)."""
        self.drop_script(keys=[keys.events(job_id), keys.events_meta(job_id), keys.EVENTS_JOBS], args=[job_id, ""])
        self.collection.delete_one({"_id": job_id})


def end_data(job):
    """The data of the stream's final ``event: end``."""
    data = {
        "job_id": job["job_id"],
        "state": job["state"],
        "attempt": job.get("attempt"),
        "events_truncated": bool(job.get("events_truncated")),
    }
    # a task that names a verdict (runs' run_program does) has it on the end event
    results = (job.get("result") or {}).get("result")
    if isinstance(results, list) and results and isinstance(results[0], dict) and "verdict" in results[0]:
        data["verdict"] = results[0]["verdict"]
    return data


def events():
    """The app's JobEvents (scripts registered once per app)."""
    app = current_app._get_current_object()
    service = app.extensions.get("oc_job_events")
    if service is None:
        cfg = app.config
        store = JobStore.from_config(mongo.cx, cfg)
        service = JobEvents(
            redis.client, store, store.db[COLLECTION], cfg["JOB_EVENTS_MAX"], cfg["JOB_EVENTS_MAX_BYTES"]
        )
        app.extensions["oc_job_events"] = service
    return service


def annotate(job):
    """``events_truncated`` on a job document (archived jobs carry it; live ones: Redis)."""
    if "events_truncated" not in job:
        job["events_truncated"] = events().truncated(job["job_id"])
    return job


def archive(job_id):
    """Hook for the queue's finalisation: move a job's events to MongoDB now that it is final."""
    return events().archive(job_id)


def archive_due():
    """Scheduler entry: archive the events of final jobs (whoever finished them)."""
    moved = events().archive_due()
    if moved:
        log.info("job events: archived the events of %d jobs", moved)
