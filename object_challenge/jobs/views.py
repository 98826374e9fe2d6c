"""HTTP routes of the job queue, under ``/newapi`` (Sisyphus's routes and shapes).

Roles: a user enqueues and reads their own jobs; a worker polls, heartbeats,
completes and reads the queue, workers, jobs, data and status; an admin may do
everything (clear and disable queues, disable and delete workers).
"""

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, current_app, jsonify, request
from pymongo.errors import ConnectionFailure as MongoUnreachable
from redis.exceptions import ConnectionError as RedisUnreachable
from redis.exceptions import TimeoutError as RedisTimeout
from werkzeug.exceptions import MethodNotAllowed

from object_challenge import __version__
from object_challenge.accounts.identity import authenticated, current_identity, require_role
from object_challenge.core.bodies import json_body
from object_challenge.core.errors import BadRequest, ServiceUnavailable, error_response
from object_challenge.core.health import check_stores
from object_challenge.jobs import data as module_data
from object_challenge.jobs import events as job_events
from object_challenge.jobs import workers
from object_challenge.jobs.errors import JobNotFound
from object_challenge.jobs.queue import attribute_changes
from object_challenge.jobs.service import check_bound, jobs, modules_param, queue_name, worker_id

bp = Blueprint("jobs", __name__, url_prefix="/newapi")
STARTED = time.time()
QUEUE_LIST_LIMIT = 1000
QUEUE_LIST_MAX = 100_000
MINE_LIMIT, MINE_MAX, MINE_OFFSET_MAX = 20, 100, 10_000
OPENAPI = Path(__file__).resolve().parent / "openapi.json"


@bp.errorhandler(RedisUnreachable)
@bp.errorhandler(RedisTimeout)
@bp.errorhandler(MongoUnreachable)
def store_unavailable(exc):
    """A store that does not answer is a 503 naming it, not a 500."""
    store = "mongo" if isinstance(exc, MongoUnreachable) else "redis"
    current_app.logger.warning("jobs: %s unavailable: %s", store, exc)
    return error_response(
        503, "store_unavailable", f"{store} does not answer; retry in a moment", stores={store: exc.__class__.__name__}
    )


def _whole(name, default, low, high, hint=""):
    """A whole-number query argument within low..high (400 otherwise, never 500)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or not low <= int(raw) <= high:
        more = f" ({hint})" if hint else ""
        raise BadRequest(f"{name} is a whole number from {low} to {high}{more}", code=f"bad_{name}")
    return int(raw)


def _queue():
    return queue_name(request.args.get("queue"))


def _visible(doc):
    """Users see only their own jobs (others' answer 404, as if absent)."""
    identity = current_identity()
    if identity.role == "user" and doc.get("owner_id") != identity.user_id:
        raise JobNotFound(doc["job_id"])
    return doc


# -- queue -------------------------------------------------------------------
@bp.post("/queue", strict_slashes=False)
@require_role("user", "worker")
def enqueue():
    # a bulk enqueue (up to 1,000 jobs) may exceed the app-wide body limit
    request.max_content_length = current_app.config["QUEUE_BODY_LIMIT_BYTES"]
    doc = jobs().enqueue(json_body(), _queue(), current_identity())
    return jsonify(doc), 201


@bp.get("/queue", strict_slashes=False)
@require_role("worker")
def get_queue():
    name = _queue()
    service = jobs()
    # the reference worker reads GET /queue before every poll: a long queue is cut at
    # QUEUE_LIST_LIMIT jobs ("entries" is always the full count); ?limit=0 lists all
    limit = _whole("limit", QUEUE_LIST_LIMIT, 0, QUEUE_LIST_MAX, "0 for all")
    entries = service.queue.length(name)
    waiting = service.list_queue(name, limit or None)
    attributes = service.queue.attributes(name)
    attributes["stranded"] = service.queue.stranded(name)
    return jsonify({"queue": waiting, "entries": entries, "attributes": attributes, "name": name})


@bp.delete("/queue", strict_slashes=False)
@require_role("admin")
def clear_queue():
    name = _queue()
    return jsonify({"queue": name, "deleted": jobs().clear(name)})


@bp.patch("/queue", strict_slashes=False)
@require_role("admin")
def patch_queue():
    name = _queue()
    changes = attribute_changes(json_body())
    return jsonify({"queue": name, "attributes": jobs().queue.set_attributes(name, changes)})


@bp.get("/queue/poll", strict_slashes=False)
@require_role("worker")
def poll():
    if request.method == "HEAD":  # Flask answers HEAD with the GET view: that would lease a job and drop it
        raise MethodNotAllowed(valid_methods=["GET"], description="a poll leases a job; send GET")
    modules = modules_param(request.args.get("modules"))
    worker = worker_id(request.args.get("worker_id"))
    check_bound(current_identity(), worker)
    return jsonify(jobs().poll(_queue(), worker, modules))


# -- jobs ----------------------------------------------------------------------
@bp.get("/jobs", strict_slashes=False)
@authenticated
def list_jobs():
    """``?mine=1``: the caller's own jobs, newest first (``limit`` 1..100, ``offset``), from
    MongoDB: a job appears once the recorder has written it (normally within a second)."""
    if request.args.get("mine") not in ("1", "true"):
        raise BadRequest("list your own jobs with ?mine=1", code="bad_query")
    limit = _whole("limit", MINE_LIMIT, 1, MINE_MAX)
    offset = _whole("offset", 0, 0, MINE_OFFSET_MAX)
    found, total = jobs().mine(current_identity().user_id, limit, offset)
    more = offset + len(found) < total
    return jsonify(
        {
            "jobs": found,
            "count": len(found),
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(found) if more else None,
        }
    )


@bp.get("/jobs/<job_id>")
@authenticated
def get_job(job_id):
    return jsonify(job_events.annotate(_visible(jobs().get(job_id))))


@bp.delete("/jobs/<job_id>")
@require_role("user")
def delete_job(job_id):
    service = jobs()
    _visible(service.get(job_id))
    service.delete(job_id)
    job_events.events().delete(job_id)
    return jsonify({"job_id": job_id, "deleted": True})


@bp.patch("/jobs/<job_id>/completed")
@require_role("worker")
def complete_job(job_id):
    worker = worker_id(request.args.get("worker_id"))
    check_bound(current_identity(), worker)
    return jsonify(jobs().complete(job_id, worker, json_body(empty=None)))


@bp.post("/jobs/<job_id>/release")
@require_role("worker")
def release_job(job_id):
    worker = worker_id(request.args.get("worker_id"))
    check_bound(current_identity(), worker)
    return jsonify(jobs().release(job_id, worker, json_body(empty=None)))


@bp.post("/jobs/<job_id>/cancel")
@authenticated
def cancel_job(job_id):
    """The job's owner or an admin (anyone else: 404, as if absent)."""
    service = jobs()
    identity = current_identity()
    doc = service.get(job_id)
    if not identity.is_admin and doc.get("owner_id") != identity.user_id:
        raise JobNotFound(job_id)
    return jsonify(service.cancel(job_id)), 202


# -- job events (events.py; the live stream is the gateway's: lua/oc/job_events.lua) --
@bp.post("/jobs/<job_id>/events")
@require_role("worker")
def post_events(job_id):
    worker = worker_id(request.args.get("worker_id"))
    check_bound(current_identity(), worker)
    return jsonify(job_events.events().post(job_id, worker, json_body()))


@bp.get("/jobs/<job_id>/events")
@authenticated
def get_events(job_id):
    limit = request.args.get("limit", str(job_events.READ_DEFAULT))
    limit = int(limit) if limit.isdigit() else 0
    if not 1 <= limit <= job_events.READ_MAX:
        raise BadRequest(f"limit is a whole number from 1 to {job_events.READ_MAX}", code="bad_limit")
    job = job_events.annotate(_visible(jobs().get(job_id)))
    return jsonify(job_events.events().read(job, request.args.get("after", ""), limit))


@bp.get("/jobs/<job_id>/events/stream")
@authenticated
def stream_events(job_id):
    """Every stored event as Server-Sent Events (then ``event: end`` once the job is final), in
    one answer: behind the gateway this is the live stream's catch-up; called directly, an
    EventSource reconnects with Last-Event-ID, so it polls."""
    job = job_events.annotate(_visible(jobs().get(job_id)))
    after = request.args["after"] if "after" in request.args else request.headers.get("Last-Event-ID", "")
    text, last, done = job_events.events().sse(job, after)
    response = current_app.response_class(text, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Events-Next"] = last
    response.headers["X-Events-Done"] = "1" if done else "0"
    response.headers["X-Job-State"] = job["state"]
    return response


# -- workers -----------------------------------------------------------------
@bp.get("/workers", strict_slashes=False)
@require_role("worker")
def list_workers():
    ids = workers.list_ids(jobs().queue)
    return jsonify({"workers": ids, "count": len(ids)})


@bp.get("/workers/<worker>")
@require_role("worker")
def get_worker(worker):
    return jsonify(workers.get(jobs().queue, worker_id(worker, required=True)))


@bp.post("/workers/<worker>")
@require_role("worker")
def heartbeat(worker):
    worker = worker_id(worker, required=True)
    check_bound(current_identity(), worker)
    named = request.args.get("job_id", "")
    return jsonify(workers.heartbeat(jobs(), worker, json_body(empty=None), named))


@bp.patch("/workers/<worker>")
@require_role("admin")
def patch_worker(worker):
    return jsonify(workers.set_attributes(jobs().queue, worker_id(worker, required=True), json_body()))


@bp.delete("/workers/<worker>")
@require_role("admin")
def delete_worker(worker):
    return jsonify(workers.delete(jobs(), worker_id(worker, required=True)))


# -- module data ----------------------------------------------------------------
@bp.get("/data/<module>/<path:name>")
@require_role("worker")
def get_data(module, name):
    return jsonify(module_data.get(module, name))


@bp.post("/data/<module>/<path:name>")
@require_role("worker")
def post_data(module, name):
    created = module_data.put(module, name, json_body())
    return jsonify({"module": module, "name": name, "created": created}), (201 if created else 200)


@bp.delete("/data/<module>/<path:name>")
@require_role("worker")
def delete_data(module, name):
    module_data.delete(module, name)
    return jsonify({"module": module, "name": name, "deleted": True})


# -- status ----------------------------------------------------------------------
def mask_uri(uri):
    """The URI with any password replaced by ********."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:********@{host}", parts.path, parts.query, parts.fragment))


@bp.get("/status/health")
@authenticated
def health():
    problems = check_stores()
    if problems:
        raise ServiceUnavailable(
            "unavailable: " + ", ".join(f"{k} ({v})" for k, v in problems.items()),
            code="store_unavailable",
            stores=problems,
        )
    return jsonify({"status": "online", "redis": "ok", "mongo": "ok"})


SETTINGS = (
    "CLIENT_EXPIRY",
    "REDIS_QUEUE_NAME",
    "MONGO_DATA_DB",
    "MONGO_DATA_COLL_PREFIX",
    "MONGO_JOB_DB",
    "MONGO_JOB_COLL_FAILED",
    "MONGO_JOB_COLL_COMPLETED",
    "MONGO_JOB_COLL_QUEUED",
    "JOB_LEASE_SECONDS",
    "JOB_MAX_ATTEMPTS",
)


@bp.get("/status/config")
@authenticated
def status_config():
    cfg = current_app.config
    uptime = int(time.time() - STARTED)
    return jsonify(
        {
            "backend": {"MONGO_URI": mask_uri(cfg["MONGO_URI"]), "REDIS_URI": mask_uri(cfg["REDIS_URL"])},
            "settings": {name: cfg[name] for name in SETTINGS},
            "version": __version__,
            "uptime": f"{uptime // 86400}d {uptime % 86400 // 3600:02d}:{uptime % 3600 // 60:02d}:{uptime % 60:02d}",
            "uptime_seconds": uptime,
        }
    )


# -- docs ------------------------------------------------------------------------
@bp.get("/docs/openapi.json")
def openapi():
    return current_app.response_class(OPENAPI.read_bytes(), mimetype="application/json")
