"""The campaign operations: create, start a pass, feed batches, ingest results, finish, retry.

Each batch is a job on the queue ``campaigns`` (one task ``players``). Three rules make the
bookkeeping safe with any number of workers, gunicorn processes and schedulers at once:

- **A batch number is claimed once.** ``feed`` claims the next number(s) of the pass with one
  conditional ``$inc`` on the campaign (only while fewer than ``window`` batches are in flight),
  then inserts the batch document under ``_id = campaign:n``: a number is never handed out twice
  and a batch is never created twice.
- **Results are ingested once per batch.** The insert into ``campaign_records`` is keyed by a
  unique ``_id`` (ingest.py: a second delivery's records are refused as duplicates); the batch's
  move to ``done`` is one conditional update (state != done), and only the caller that makes it
  adds the batch to the campaign's counters. A duplicate delivery
  (a retried job, a lease that expired while its worker still answered) changes nothing.
- **A batch whose job ends without results is retried** by the scheduler (``check_batches``):
  a new job for the same batch, until ``max_attempts`` deliveries; then the batch is ``failed``,
  listed, and ``retry_failed`` queues it again.

At the end of a pass (every batch done) the counters are recomputed from the batch documents
(authoritative even if a process died between two writes), and the growth rule decides the range
of the next pass.
"""

import logging
import math
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from object_challenge.campaigns import growth as growth_rule
from object_challenge.campaigns import metrics, records, store
from object_challenge.campaigns.ingest import ingest_batch
from object_challenge.core.errors import ApiError, BadRequest, Conflict, NotFound
from object_challenge.core.extensions import mongo
from object_challenge.jobs.service import MAX_BULK, jobs

log = logging.getLogger(__name__)

QUEUE = "campaigns"
TASK = "players"
SOURCES = ("players",)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_RANGE = 100_000_000
RESTART_UNQUEUED_S = 10  # a batch created but never enqueued (a crash in between) is enqueued after this
RATE_BINS = 30  # slices of a pass in the dashboard's ids/s chart
RETRY_DELAY_S = 2  # a batch whose job ended without results waits this long before its next job
CHECK_EVERY_S = 2.0  # the scheduler looks for in-flight batches whose job ended this often


class InvalidField(ApiError):
    status, code = 422, "invalid_field"

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}", field=field)


class CampaignExists(Conflict):
    code = "campaign_exists"


class PassRunning(Conflict):
    code = "pass_running"


class CampaignNotFound(NotFound):
    code = "campaign_not_found"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class PlayerNotFound(NotFound):
    code = "player_not_found"


def now():
    return datetime.now(UTC)


def db():
    return mongo.db


# -- validation ------------------------------------------------------------------
def _int_field(body, field, low, high, default=None):
    value = body.get(field, default)
    if type(value) is not int or not low <= value <= high:
        raise InvalidField(field, f"a whole number from {low} to {high}")
    return value


def parse_campaign(body):
    if not isinstance(body, dict):
        raise BadRequest(
            'send a JSON object {"name", "source": "players", "range": {"start", "end"}, "batch_size"}',
            code="bad_campaign",
        )
    name = body.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidField("name", "1-64 letters, digits and _.- (starting with a letter or digit)")
    if body.get("source", "players") not in SOURCES:
        raise InvalidField("source", f"one of {', '.join(SOURCES)}")
    span = body.get("range")
    if not isinstance(span, dict):
        raise InvalidField("range", 'an object {"start": first id, "end": last id}')
    start = _int_field(span, "start", 1, 10**12)
    end = span.get("end")
    if type(end) is not int or not start <= end < start + MAX_RANGE:
        raise InvalidField("range.end", f"a whole number from range.start to range.start + {MAX_RANGE - 1}")
    rule = body.get("growth")
    if rule is None:
        rule = {}
    if not isinstance(rule, dict):
        raise InvalidField("growth", 'an object {"threshold": ids, "step": ids}')
    threshold = rule.get("threshold", growth_rule.DEFAULT_THRESHOLD)
    step = rule.get("step", growth_rule.DEFAULT_STEP)
    if type(threshold) is not int or not 0 <= threshold <= 10**12:
        raise InvalidField("growth.threshold", "a whole number >= 0")
    if type(step) is not int or not 1 <= step <= 10**12:
        raise InvalidField("growth.step", "a whole number >= 1")
    return {
        "name": name,
        "source": "players",
        "range": {"start": start, "end": end},
        "batch_size": _int_field(body, "batch_size", 1, 100, 100),
        "growth_rule": {"threshold": threshold, "step": step},
        "window": _int_field(body, "window", 1, 1000, 10),
        "max_attempts": _int_field(body, "max_attempts", 1, 100, 3),
    }


# -- reads -------------------------------------------------------------------------
def get(campaign_id):
    doc = store.campaigns(db()).find_one({"_id": campaign_id})
    if doc is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r}")
    return doc


def by_name(name):
    doc = store.campaigns(db()).find_one({"name": name})
    if doc is None:
        raise CampaignNotFound(f"no campaign named {name!r}")
    return doc


def _state(doc):
    if doc["state"] == "running" and doc.get("paused"):
        return "paused"
    return doc["state"]


def _in_flight_batches(doc):
    current = doc.get("current")
    if not current:
        return []
    return list(
        store.batches(db()).find({"campaign": doc["_id"], "pass": current["pass"], "state": "queued"}).sort("n", 1)
    )


def _job_states(job_ids):
    """``{job_id: state}`` from the queue (Redis while active, else the job's record)."""
    service = jobs()
    ids = [i for i in job_ids if i]
    live = service.queue.live_many(ids) if ids else {}
    out = {}
    for job_id in ids:
        state = (live.get(job_id) or {}).get("state")
        if state is None:
            doc = service.store.get(job_id)
            state = doc.get("state") if doc else "missing"
        out[job_id] = state
    return out


def _job(job_id):
    try:
        return jobs().get(job_id)
    except NotFound:
        return None


def progress(doc, with_failed=True):
    """The campaign as ``GET /campaigns/{id}`` shows it."""
    current = doc.get("current") or {}
    counters = doc.get("batches") or {}
    in_flight = _in_flight_batches(doc) if doc["state"] in ("running", "failed") else []
    states = _job_states([b.get("job_id") for b in in_flight])
    running = sum(1 for b in in_flight if states.get(b.get("job_id")) == "running")
    total = counters.get("total", 0)
    done = counters.get("done", 0)
    ids_done = current.get("ids_done", 0)
    ids_total = (current["range"]["end"] - current["range"]["start"] + 1) if current else 0
    rate, eta = None, None
    if current.get("started_at"):
        ended = current.get("finished_at") or now()
        started = current["started_at"]
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if ended.tzinfo is None:
            ended = ended.replace(tzinfo=UTC)
        elapsed = max((ended - started).total_seconds(), 1e-3)
        rate = round(ids_done / elapsed, 1)
        if doc["state"] == "done":
            eta = 0
        elif rate > 0:
            eta = round((ids_total - ids_done) / rate, 1)
    body = {
        "campaign_id": doc["_id"],
        "name": doc["name"],
        "source": doc["source"],
        "state": _state(doc),
        "paused": bool(doc.get("paused")),
        "pass": doc.get("pass", 0),
        "range": doc["range"],
        "pass_range": current.get("range"),
        "batch_size": doc["batch_size"],
        "window": doc["window"],
        "max_attempts": doc["max_attempts"],
        "growth_rule": doc["growth_rule"],
        "batches": {
            "total": total,
            "queued": len(in_flight) - running,
            "running": running,
            "done": done,
            "failed": counters.get("failed", 0),
        },
        "ids_done": ids_done,
        "players_found": doc.get("players_found", 0),
        "max_id_found": doc.get("max_id_found"),
        "ids_per_second": rate,
        "eta_s": eta,
        "growth": [_iso(g) for g in doc.get("growth", [])],
        "passes": [_iso(p) for p in doc.get("passes", [])],
        "created_at": _isodate(doc.get("created_at")),
        "started_at": _isodate(current.get("started_at")),
        "finished_at": _isodate(current.get("finished_at")),
    }
    if with_failed:  # no query while the counter says none failed (a progress read is polled)
        body["failed_batches"] = failed_batches(doc, limit=100) if counters.get("failed") else []
    return body


def _aware(value):
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def rate_history(doc, bins=RATE_BINS):
    """The current pass's ids/s over time, from its batches' completion times: the pass so
    far (its start to its end, or now) in ``bins`` equal slices, each the ids of the batches
    done in it over its width. One indexed read of the pass's done batches (three fields
    each: a 20,000-id pass in batches of 100 is 200 small documents)."""
    current = doc.get("current") or {}
    if not current.get("started_at"):
        return {"pass": doc.get("pass", 0), "bin_s": None, "samples": []}
    started = _aware(current["started_at"])
    ended = _aware(current.get("finished_at") or now())
    width = max((ended - started).total_seconds(), 1.0) / bins
    ids = [0] * bins
    query = {"campaign": doc["_id"], "pass": current["pass"], "state": "done"}
    for batch_doc in store.batches(db()).find(query, {"start": 1, "end": 1, "done_at": 1}):
        if not batch_doc.get("done_at"):
            continue
        offset = (_aware(batch_doc["done_at"]) - started).total_seconds()
        ids[min(bins - 1, max(0, int(offset // width)))] += batch_doc["end"] - batch_doc["start"] + 1
    return {
        "pass": current["pass"],
        "bin_s": round(width, 3),
        "samples": [
            {"at": (started + timedelta(seconds=width * (i + 1))).isoformat(), "ids_per_second": round(n / width, 2)}
            for i, n in enumerate(ids)
        ],
    }


def _isodate(value):
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    return value


def _iso(entry):
    return {k: _isodate(v) for k, v in entry.items()}


def failed_batches(doc, limit=None):
    current = doc.get("current")
    if not current:
        return []
    cursor = store.batches(db()).find({"campaign": doc["_id"], "pass": current["pass"], "state": "failed"}).sort("n", 1)
    if limit:
        cursor = cursor.limit(limit)
    return [_batch_view(b) for b in cursor]


def _batch_view(batch):
    return {
        "batch": batch["n"],
        "pass": batch["pass"],
        "start": batch["start"],
        "end": batch["end"],
        "state": batch["state"],
        "job_id": batch.get("job_id"),
        "attempts": batch.get("attempts", 0),
        "found": batch.get("found"),
        "error": batch.get("error"),
    }


def batch(campaign_id, n):
    doc = store.batches(db()).find_one({"_id": store.batch_id(campaign_id, n)})
    if doc is None:
        raise BatchNotFound(f"campaign {campaign_id!r} has no batch {n}")
    return _batch_view(doc)


def player(campaign_id, player_id):
    get(campaign_id)
    passes = records.player_passes(db(), campaign_id, player_id)
    if not passes:
        raise PlayerNotFound(f"player {player_id} was never found by campaign {campaign_id!r}")
    return {
        "player_id": int(player_id),
        "passes": [
            {"pass": r["pass"], "battles": r["battles"], "diff_battles": r.get("diff_battles"), "record": r["record"]}
            for r in passes
        ],
    }


# -- writes ------------------------------------------------------------------------
def create(body, identity):
    fields = parse_campaign(body)
    doc = {
        "_id": uuid.uuid4().hex[:16],
        **fields,
        "state": "created",
        "paused": False,
        "pass": 0,
        "batch_seq": 1,
        # campaign_latest blocks of 100 ids counted from the first id: a batch of 100 is one block
        # (campaigns created before this field have none: their blocks start at 0)
        "block_origin": fields["range"]["start"],
        "current": None,
        "batches": {"total": 0, "done": 0, "failed": 0},
        "in_flight": 0,
        "players_found": 0,
        "max_id_found": None,
        "growth": [],
        "passes": [],
        "owner": {"user_id": identity.user_id, "name": identity.name},
        "created_at": now(),
    }
    try:
        store.campaigns(db()).insert_one(doc)
    except DuplicateKeyError:
        raise CampaignExists(f"a campaign named {fields['name']!r} exists") from None
    return doc


def start_pass(campaign_id):
    doc = get(campaign_id)
    if doc["state"] in ("running", "failed"):
        raise PassRunning(
            f"pass {doc['pass']} of {doc['name']!r} is {_state(doc)}"
            + ("; retry its failed batches first (POST .../batches/retry)" if doc["state"] == "failed" else ""),
            **{"pass": doc["pass"]},
        )
    pass_no = doc["pass"] + 1
    span = dict(doc["range"])
    total = math.ceil((span["end"] - span["start"] + 1) / doc["batch_size"])
    current = {
        "pass": pass_no,
        "range": span,
        "first_batch": doc["batch_seq"],
        "total": total,
        "claimed": 0,
        "ids_done": 0,
        "started_at": now(),
        "finished_at": None,
    }
    updated = store.campaigns(db()).find_one_and_update(
        {"_id": campaign_id, "pass": doc["pass"], "state": doc["state"]},
        {
            "$set": {
                "state": "running",
                "pass": pass_no,
                "current": current,
                "batch_seq": doc["batch_seq"] + total,
                "batches": {"total": total, "done": 0, "failed": 0},
                "in_flight": 0,
                "players_found": 0,
                "max_id_found": None,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:  # another request started it meanwhile
        raise PassRunning(f"a pass of {doc['name']!r} was just started", **{"pass": pass_no})
    feed(updated)
    return {"pass": pass_no, "batches": total}


def set_paused(campaign_id, paused):
    if not isinstance(paused, bool):
        raise InvalidField("paused", "true or false")
    doc = store.campaigns(db()).find_one_and_update(
        {"_id": campaign_id}, {"$set": {"paused": paused}}, return_document=ReturnDocument.AFTER
    )
    if doc is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r}")
    if not paused:
        feed(doc)
    return doc


def _owner(doc):
    owner = doc.get("owner") or {}
    return SimpleNamespace(user_id=owner.get("user_id"), name=owner.get("name") or "campaigns")


def _job_body(doc, batch_doc, attempts_left):
    return {
        "job_title": f"campaign {doc['name']} pass {batch_doc['pass']} batch {batch_doc['n']}",
        "tasks": [
            {
                "module": TASK,
                "data": {
                    "campaign_id": doc["_id"],
                    "pass": batch_doc["pass"],
                    "batch": batch_doc["n"],
                    "start": batch_doc["start"],
                    "end": batch_doc["end"],
                    # deliveries the batch had before this job: 0 with the job's attempt 1 means
                    # nobody can have delivered it yet, so the worker skips asking whether it is done
                    "attempts_before": batch_doc.get("attempts", 0),
                },
            }
        ],
        "max_attempts": max(1, attempts_left),
    }


def _enqueue(doc, batch_docs, delay_s=0):
    """One job per batch, in one bulk enqueue; records each job's id on its batch (only if the
    batch still waits for one: a concurrent retry may have given it another)."""
    bodies = []
    for batch_doc in batch_docs:
        body = _job_body(doc, batch_doc, doc["max_attempts"] - batch_doc.get("attempts", 0))
        if delay_s:
            body["delay_s"] = delay_s
        bodies.append(body)
    for i in range(0, len(bodies), MAX_BULK):
        answer = jobs().enqueue({"jobs": bodies[i : i + MAX_BULK]}, QUEUE, _owner(doc))
        enqueued = now()
        store.batches(db()).bulk_write(
            [
                UpdateOne(
                    {"_id": batch_doc["_id"], "state": "queued", "job_id": batch_doc.get("job_id")},
                    {"$set": {"job_id": job_id, "enqueued_at": enqueued}},
                )
                for batch_doc, job_id in zip(batch_docs[i : i + MAX_BULK], answer["job_ids"], strict=True)
            ],
            ordered=False,
        )


def feed(doc):
    """Keep ``window`` batches of the current pass in flight; returns how many were created."""
    if doc is None or doc["state"] != "running" or doc.get("paused"):
        return 0
    current = doc["current"]
    indexes = _claim(doc, min(doc["window"] - doc.get("in_flight", 0), current["total"] - current["claimed"]))
    if not indexes:
        return 0
    created = [_batch_doc(doc, current, index) for index in indexes]
    store.batches(db()).insert_many(created)  # a duplicate key here would mean a number claimed twice
    _enqueue(doc, created)
    return len(created)


def _claim(doc, wanted):
    """Batch indexes of the current pass claimed for this caller: all ``wanted`` in one write when
    ``doc`` is still right (the start of a pass), else one at a time while there is room."""
    current = doc["current"]
    campaigns = store.campaigns(db())
    match = {"_id": doc["_id"], "state": "running", "paused": False, "pass": current["pass"]}
    if wanted > 1:
        before = campaigns.find_one_and_update(
            {
                **match,
                "current.claimed": {"$lte": current["total"] - wanted},
                "in_flight": {"$lte": doc["window"] - wanted},
            },
            {"$inc": {"current.claimed": wanted, "in_flight": wanted}},
            projection={"current.claimed": 1},
        )
        if before is not None:
            first = before["current"]["claimed"]
            return list(range(first, first + wanted))
    indexes = []
    for _ in range(max(0, wanted)):
        before = campaigns.find_one_and_update(
            {**match, "current.claimed": {"$lt": current["total"]}, "in_flight": {"$lt": doc["window"]}},
            {"$inc": {"current.claimed": 1, "in_flight": 1}},
            projection={"current.claimed": 1},
        )
        if before is None:
            break
        indexes.append(before["current"]["claimed"])
    return indexes


def _batch_doc(doc, current, index):
    start = current["range"]["start"] + index * doc["batch_size"]
    return {
        "_id": store.batch_id(doc["_id"], current["first_batch"] + index),
        "campaign": doc["_id"],
        "pass": current["pass"],
        "n": current["first_batch"] + index,
        "index": index,
        "start": start,
        "end": min(current["range"]["end"], start + doc["batch_size"] - 1),
        "state": "queued",
        "job_id": None,
        "attempts": 0,
        "block_origin": doc.get("block_origin", 0),
        "created_at": now(),
    }


def parse_results(batch_doc, body):
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object {"players": {"<id>": record | null, ...}}', code="bad_results")
    players = body.get("players")
    if not isinstance(players, dict):
        raise InvalidField("players", 'an object {"<player id>": record or null} for every id of the batch')
    answers = {}
    for key, value in players.items():
        try:
            player_id = int(key)
        except (TypeError, ValueError):
            raise InvalidField("players", f"{key!r} is not a player id") from None
        if value is not None and not isinstance(value, dict):
            raise InvalidField("players", f"the record of {player_id} must be an object or null")
        answers[player_id] = value
    expected = set(range(batch_doc["start"], batch_doc["end"] + 1))
    if set(answers) != expected:
        missing, extra = sorted(expected - set(answers)), sorted(set(answers) - expected)
        raise InvalidField(
            "players",
            f"must answer exactly the ids {batch_doc['start']}..{batch_doc['end']}"
            f" (missing {missing[:5]}, not in the batch {extra[:5]})",
        )
    return answers


def ingest_results(campaign_id, n, body):
    """Ingest one batch's answers exactly once; returns what happened."""
    batches = store.batches(db())
    batch_doc = batches.find_one({"_id": store.batch_id(campaign_id, n)})
    if batch_doc is None:
        raise BatchNotFound(f"campaign {campaign_id!r} has no batch {n}")
    if batch_doc["state"] == "done":
        return {"batch": batch_doc["n"], "pass": batch_doc["pass"], "ingested": False, "duplicate": True}
    answers = parse_results(batch_doc, body)
    started = time.perf_counter()
    origin = batch_doc.get("block_origin")
    if origin is None:  # a batch made by an older process: the campaign says (0 for older campaigns)
        campaign = store.campaigns(db()).find_one({"_id": campaign_id}, {"block_origin": 1}) or {}
        origin = campaign.get("block_origin", 0)
    result = ingest_batch(db(), campaign_id, batch_doc["pass"], answers, block_origin=origin)
    before = batches.find_one_and_update(
        {"_id": batch_doc["_id"], "state": {"$ne": "done"}},
        {
            "$set": {
                "state": "done",
                "found": result.found,
                "max_id_found": result.max_id_found,
                "done_at": now(),
                "done_by_job": body.get("job_id") if isinstance(body.get("job_id"), str) else None,
            }
        },
    )
    if before is None:  # another delivery of the same batch won the race: it counted the batch
        return {"batch": batch_doc["n"], "pass": batch_doc["pass"], "ingested": False, "duplicate": True}
    inc = {
        "batches.done": 1,
        "players_found": result.found,
        "current.ids_done": batch_doc["end"] - batch_doc["start"] + 1,
    }
    if before["state"] == "failed":
        inc["batches.failed"] = -1
    else:
        inc["in_flight"] = -1
    update = {"$inc": inc}
    if result.max_id_found is not None:
        update["$max"] = {"max_id_found": result.max_id_found}
    doc = store.campaigns(db()).find_one_and_update(
        {"_id": campaign_id, "pass": batch_doc["pass"]}, update, return_document=ReturnDocument.AFTER
    )
    metrics.count_ingest(inc["current.ids_done"], time.perf_counter() - started)
    if doc is not None and not maybe_finish(doc):
        feed(doc)
    return {
        "batch": batch_doc["n"],
        "pass": batch_doc["pass"],
        "ingested": True,
        "duplicate": False,
        "found": result.found,
        "inserted": result.inserted,
    }


def maybe_finish(doc):
    """End the pass once every batch is done (or mark it failed when only failed ones are left)."""
    if doc is None or doc["state"] != "running":
        return False
    counters = doc["batches"]
    if counters["done"] >= counters["total"]:
        return finish_pass(doc)
    if counters["failed"] and counters["done"] + counters["failed"] >= counters["total"] and not doc["in_flight"]:
        store.campaigns(db()).update_one(
            {"_id": doc["_id"], "pass": doc["pass"], "state": "running"}, {"$set": {"state": "failed"}}
        )
    return False


def finish_pass(doc):
    current = doc["current"]
    pass_no = current["pass"]
    done = list(
        store.batches(db()).find(
            {"campaign": doc["_id"], "pass": pass_no, "state": "done"}, {"found": 1, "max_id_found": 1, "start": 1}
        )
    )
    if len(done) < current["total"]:  # a counter ran ahead of the documents: not finished
        return False
    found = sum(b.get("found") or 0 for b in done)
    highs = [b["max_id_found"] for b in done if b.get("max_id_found") is not None]
    max_id = max(highs) if highs else None
    rule = doc["growth_rule"]
    end = current["range"]["end"]
    new_end = growth_rule.next_end(end, max_id, rule["threshold"], rule["step"])
    finished = now()
    summary = {
        "pass": pass_no,
        "range": current["range"],
        "batches": current["total"],
        "players_found": found,
        "max_id_found": max_id,
        "started_at": current["started_at"],
        "finished_at": finished,
    }
    update = {
        "$set": {
            "state": "done",
            "current.finished_at": finished,
            "players_found": found,
            "max_id_found": max_id,
            "range.end": new_end,
        },
        "$push": {"passes": summary},
    }
    if new_end != end:
        update["$push"]["growth"] = {"pass": pass_no, "from": end, "to": new_end, "at": finished}
    result = store.campaigns(db()).update_one({"_id": doc["_id"], "pass": pass_no, "state": "running"}, update)
    if result.modified_count:
        log.info(
            "campaign %s pass %d done: %d players, max id %s%s",
            doc["name"],
            pass_no,
            found,
            max_id,
            f", range grows to {new_end}" if new_end != end else "",
        )
    return True


def retry_failed(campaign_id):
    doc = get(campaign_id)
    current = doc.get("current")
    if not current:
        return {"retried": 0, "batches": []}
    batches = store.batches(db())
    failed = list(batches.find({"campaign": campaign_id, "pass": current["pass"], "state": "failed"}))
    retried = []
    for batch_doc in failed:
        moved = batches.find_one_and_update(
            {"_id": batch_doc["_id"], "state": "failed"},
            {"$set": {"state": "queued", "attempts": 0, "job_id": None, "error": None, "created_at": now()}},
            return_document=ReturnDocument.AFTER,
        )
        if moved is not None:
            retried.append(moved)
    if retried:
        doc = store.campaigns(db()).find_one_and_update(
            {"_id": campaign_id, "pass": current["pass"]},
            {"$inc": {"batches.failed": -len(retried), "in_flight": len(retried)}, "$set": {"state": "running"}},
            return_document=ReturnDocument.AFTER,
        )
        _enqueue(doc, retried)
    return {"retried": len(retried), "batches": [b["n"] for b in retried]}


def check_batches(doc):
    """The in-flight batches whose job ended without results: a new job, or ``failed`` at the limit."""
    in_flight = _in_flight_batches(doc)
    batches = store.batches(db())
    states = _job_states([b.get("job_id") for b in in_flight])
    limit = time.time() - RESTART_UNQUEUED_S
    for batch_doc in in_flight:
        job_id = batch_doc.get("job_id")
        if job_id is None:
            created = batch_doc["created_at"]
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            if created.timestamp() < limit:  # created, never enqueued (its process died in between)
                _enqueue(doc, [batch_doc])
            continue
        state = states.get(job_id)
        if state not in ("completed", "failed", "cancelled", "missing"):
            continue
        job = _job(job_id) if state != "missing" else None
        used = int((job or {}).get("attempt") or 1)
        attempts = batch_doc.get("attempts", 0) + used
        error = ((job or {}).get("result") or {}).get("message") or f"job {state} without results"
        if attempts < doc["max_attempts"]:
            moved = batches.find_one_and_update(
                {"_id": batch_doc["_id"], "state": "queued", "job_id": job_id},
                {"$set": {"attempts": attempts, "job_id": None, "error": error}},
                return_document=ReturnDocument.AFTER,
            )
            if moved is not None:
                log.info("campaign %s batch %d: %s; new job (attempt %d)", doc["name"], moved["n"], error, attempts)
                _enqueue(doc, [moved], delay_s=RETRY_DELAY_S)
            continue
        failed = batches.find_one_and_update(
            {"_id": batch_doc["_id"], "state": "queued", "job_id": job_id},
            {"$set": {"state": "failed", "attempts": attempts, "error": error, "failed_at": now()}},
        )
        if failed is not None:
            log.warning("campaign %s batch %d failed after %d attempts: %s", doc["name"], failed["n"], attempts, error)
            store.campaigns(db()).update_one(
                {"_id": doc["_id"], "pass": batch_doc["pass"]}, {"$inc": {"batches.failed": 1, "in_flight": -1}}
            )


def tick(check_every_s=0.0):
    """The scheduler's step for every running campaign: retries (``check_batches``, at most once
    per ``check_every_s`` in this process), feeding, the end of a pass."""
    campaigns = store.campaigns(db())
    running = list(campaigns.find({"state": "running"}))
    for stale in set(_checked) - {doc["_id"] for doc in running}:
        del _checked[stale]
    for doc in running:
        try:
            if time.monotonic() - _checked.get(doc["_id"], -math.inf) >= check_every_s:
                _checked[doc["_id"]] = time.monotonic()
                check_batches(doc)
                doc = campaigns.find_one({"_id": doc["_id"]})
            if not maybe_finish(doc):
                feed(doc)
        except Exception:
            log.exception("campaign %s: tick failed", doc.get("name"))


_checked = {}  # campaign id -> time.monotonic() of this process's last check_batches


def scheduled_tick():
    """The scheduler's step (every 0.5 s): feeding and the end of a pass each time, the in-flight
    batches' jobs every CHECK_EVERY_S (a query over the batches and a Redis read per batch: a job
    that ended without results waits RETRY_DELAY_S for its successor anyway)."""
    tick(CHECK_EVERY_S)
