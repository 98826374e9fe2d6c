"""The dashboard's JSON reads (admins only), under /newapi/dashboard/.

Lists are pages (``offset``, ``limit`` up to ``MAX_LIMIT``): a queue of 10,000 jobs costs
one LRANGE of a page and one MongoDB ``$in`` of its ids, never the whole list. Actions
are not here: the pages call the services' own routes (PATCH /newapi/queue, POST
/newapi/jobs/<id>/cancel, ...), so the dashboard has no rule of its own to keep in step.
"""

from datetime import UTC, datetime, timedelta

import requests
from flask import Blueprint, current_app, jsonify, request
from prometheus_client.parser import text_string_to_metric_families

from object_challenge.accounts.identity import require_role
from object_challenge.campaigns import service as campaigns_service
from object_challenge.core import counting
from object_challenge.core.errors import BadRequest
from object_challenge.core.extensions import redis
from object_challenge.core.health import check_stores
from object_challenge.jobs import keys as job_keys
from object_challenge.jobs import workers
from object_challenge.jobs.service import jobs
from object_challenge.publish import keys as puzzle_keys
from object_challenge.publish.models import Puzzle
from object_challenge.runs import service as runs_service

bp = Blueprint("dashboard_api", __name__, url_prefix="/newapi/dashboard")

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
SERVICE_ADDRS = ("API_ADDR", "JOBS_ADDR", "PUBLISH_ADDR", "STORAGE_ADDR")


@bp.before_request
@require_role("admin")
def admins_only():
    """Every route here: an admin token, else 401/403 in the house shape."""


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _page():
    def whole(name, default, high):
        raw = request.args.get(name, str(default))
        if not raw.isdigit() or int(raw) > high:
            raise BadRequest(f"{name} is a whole number from 0 to {high}", code="bad_page")
        return int(raw)

    limit = whole("limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
    return whole("offset", 0, 10**9), limit


def _summary(job_id, doc, live):
    doc, live = doc or {}, live or {}
    return {
        "job_id": job_id,
        "job_title": doc.get("job_title", ""),
        "state": live.get("state") or doc.get("state", "unknown"),
        "attempt": int(live.get("attempt") or doc.get("attempt") or 0),
        "worker_id": live.get("worker") or doc.get("worker_id") or "",
        "added": doc.get("added", ""),
        "modules": [t.get("module", "") for t in doc.get("tasks") or [] if isinstance(t, dict)],
    }


def _documents(service, ids):
    """{id: document} from Redis (live jobs), MongoDB for those it no longer holds."""
    found = {job_id: doc for job_id, doc in service.queue.read(ids).items() if doc is not None}
    missing = [job_id for job_id in ids if job_id not in found]
    if missing:
        found.update(service.store.get_active_many(missing))
    return found


def _running_by_queue(service):
    """Running job id -> its live hash, from the leases index (running jobs only)."""
    ids = service.queue.redis.zrange(job_keys.LEASES, 0, -1)
    return {job_id: live for job_id, live in service.queue.live_many(ids).items() if live}


def _service_health():
    """Each gunicorn service's /healthz, asked directly (half a second each at most)."""
    health = {}
    for setting in SERVICE_ADDRS:
        name = setting.removesuffix("_ADDR").lower()
        try:
            answer = requests.get(f"http://{current_app.config[setting]}/healthz", timeout=0.5)
            health[name] = "ok" if answer.status_code == 200 else f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            health[name] = f"down ({exc.__class__.__name__})"
    return health


def _gateway_counts():
    """The gateway's request and refusal counters (its /_metrics on METRICS_ADDR), or None.
    The page turns two of these into rates."""
    try:
        answer = requests.get(f"http://{current_app.config['METRICS_ADDR']}/_metrics", timeout=0.5)
        answer.raise_for_status()
    except requests.RequestException:
        return None
    requests_by_route, refusals = {}, {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "oc_gateway_requests_total":
                route = requests_by_route.setdefault(sample.labels["route"], {})
                route[sample.labels["status"]] = int(sample.value)
            elif sample.name == "oc_gateway_refusals_total":
                refusals[sample.labels["status"]] = int(sample.value)
    return {"requests": requests_by_route, "refusals": refusals}


@bp.get("/overview")
def overview():
    problems = check_stores()
    service = jobs()
    running = _running_by_queue(service)
    queues = []
    for name in service.queue.queues():
        queues.append(
            {
                "name": name,
                "waiting": service.queue.length(name),
                "running": sum(1 for live in running.values() if live.get("queue") == name),
                "disabled": bool(service.queue.attributes(name).get("disabled")),
            }
        )
    return jsonify(
        {
            "stores": {store: problems.get(store, "ok") for store in ("redis", "mongo")},
            "services": _service_health(),
            "queues": queues,
            # live jobs from Redis (their truth), finished ones from MongoDB (the recorder's batches)
            "jobs": {
                "waiting": sum(q["waiting"] for q in queues),
                "running": len(running),
                **{state: service.store.count(state) for state in service.store.final},
            },
            "workers": len(workers.list_ids(service.queue)),
            "puzzles": {status: Puzzle.objects(status=status).count() for status in ("active", "complete")},
            "gateway": _gateway_counts(),
        }
    )


@bp.get("/queues/<name>")
def queue_page(name):
    offset, limit = _page()
    service = jobs()
    ids = service.queue.waiting(name, offset, offset + limit - 1)
    docs = _documents(service, ids)
    lives = service.queue.live_many(ids)
    running = {j: live for j, live in _running_by_queue(service).items() if live.get("queue") == name}
    running_docs = _documents(service, list(running)[:MAX_LIMIT])
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    finished = {
        state: counting.count(collection, {"queue": name, "finished_at": {"$gte": hour_ago}})
        for state, collection in service.store.final.items()
    }
    return jsonify(
        {
            "name": name,
            "attributes": service.queue.attributes(name),
            "waiting": {
                "total": service.queue.length(name),
                "offset": offset,
                "limit": limit,
                "jobs": [_summary(j, docs.get(j), lives.get(j)) for j in ids],
            },
            "running": [_summary(j, running_docs.get(j), live) for j, live in list(running.items())[:MAX_LIMIT]],
            "running_total": len(running),
            "finished_last_hour": finished,
        }
    )


@bp.get("/workers")
def worker_list():
    offset, limit = _page()
    queue = jobs().queue
    ids = workers.list_ids(queue)
    # a disabled worker that stopped sending heartbeats still matters to an operator
    disabled = [w for w in redis.client.scan_iter(match=job_keys.worker_attributes("*"), count=500)]
    prefix = job_keys.worker_attributes("")
    ids = sorted(set(ids) | {w.removeprefix(prefix) for w in disabled})
    found = []
    for worker in ids[offset : offset + limit]:
        try:
            found.append(workers.get(queue, worker))
        except workers.WorkerNotFound:
            continue
    return jsonify({"total": len(ids), "offset": offset, "limit": limit, "workers": found})


@bp.get("/finished")
def finished():
    """The latest completed or failed jobs, newest first."""
    offset, limit = _page()
    state = request.args.get("state", "completed")
    service = jobs()
    if state not in service.store.final:
        raise BadRequest(f"state is one of {', '.join(service.store.final)}", code="bad_state")
    collection = service.store.final[state]
    docs = collection.find({}).sort("finished_at", -1).skip(offset).limit(limit)
    return jsonify(
        {
            "state": state,
            "total": counting.count(collection),
            "offset": offset,
            "limit": limit,
            "jobs": [_summary(doc["_id"], doc, None) for doc in docs],
        }
    )


@bp.get("/puzzles")
def puzzles():
    offset, limit = _page()
    page = list(
        Puzzle.objects.only("puzzle_id", "rows", "cols", "status").order_by("-puzzle_id").skip(offset).limit(limit)
    )
    pipe = redis.client.pipeline(transaction=False)
    for puzzle in page:
        pipe.hmget(puzzle_keys.meta(puzzle.puzzle_id), "count", "immovable", "seq", "last_move")
    if page:
        # live players: the puzzle's open update streams (each puzzle page opens one; the
        # gateway subscribes one Redis connection per stream), counted by Redis at this moment
        pipe.pubsub_numsub(*[puzzle_keys.channel(puzzle.puzzle_id) for puzzle in page])
    answers = pipe.execute()
    lives, watching = answers[: len(page)], dict(answers[len(page)]) if page else {}
    rows = []
    for puzzle, (count, immovable, seq, last_move) in zip(page, lives, strict=True):
        size = puzzle.rows * puzzle.cols
        rows.append(
            {
                "puzzle_id": puzzle.puzzle_id,
                "rows": puzzle.rows,
                "cols": puzzle.cols,
                "status": puzzle.status,
                "pieces": size,
                "placed": int(immovable) if immovable else None,
                "completion": round(100 * int(immovable) / int(count or size), 1) if immovable else None,
                "seq": int(seq) if seq else None,
                "live": count is not None,
                "last_move_ms": int(last_move) if last_move else None,
                "live_players": int(watching.get(puzzle_keys.channel(puzzle.puzzle_id), 0)),
            }
        )
    return jsonify({"total": Puzzle.objects.count(), "offset": offset, "limit": limit, "puzzles": rows})


@bp.get("/runs")
def runs():
    """Recent runs (jobs of the run_program task): live ones from Redis, then finished ones
    from MongoDB, newest first, each as GET /newapi/runs/<id> describes it."""
    offset, limit = _page()
    service = jobs()
    described = runs_service.runs()
    live_ids = service.queue.redis.zrange(job_keys.LEASES, 0, -1)
    live = [
        doc
        for doc in _documents(service, live_ids).values()
        if [t.get("module") for t in doc.get("tasks") or []] == [runs_service.MODULE]
    ]
    query = {"tasks.module": runs_service.MODULE}
    finished = []
    for collection in service.store.final.values():
        finished.extend(collection.find(query).sort("finished_at", -1).limit(offset + limit))
    finished.sort(key=lambda doc: doc.get("finished_at") or "", reverse=True)
    page = (live + finished)[offset : offset + limit]
    total = len(live) + sum(counting.count(c, query) for c in service.store.final.values())
    return jsonify(
        {
            "total": total,
            "offset": offset,
            "limit": limit,
            "runs": [described.describe({**doc, "job_id": doc.get("job_id") or doc.get("_id")}) for doc in page],
        }
    )


@bp.get("/campaigns/<campaign_id>/rate")
def campaign_rate(campaign_id):
    """The current pass's ids/s over time (the campaigns page draws it): ``{"pass", "bin_s",
    "samples": [{"at", "ids_per_second"}]}``, a fixed number of samples whatever the pass's size."""
    return jsonify({"campaign_id": campaign_id, **campaigns_service.rate_history(campaigns_service.get(campaign_id))})
