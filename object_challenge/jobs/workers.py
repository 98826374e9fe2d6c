"""Workers: heartbeats (which extend leases), status, attributes, deletion.

A worker needs no registration: its first heartbeat creates its status, which
expires after CLIENT_EXPIRY seconds without another. Attributes (``disabled``)
outlive the status, so a disabled worker stays disabled across restarts.
"""

import json

from object_challenge.core.errors import BadRequest
from object_challenge.jobs import keys
from object_challenge.jobs.errors import WorkerNotFound
from object_challenge.jobs.queue import attribute_changes, decode_attributes
from object_challenge.jobs.store import iso_from_ms, utcnow

MAX_LISTED = 100  # job ids a heartbeat may list as running


def heartbeat(jobs, worker, body, job_id=""):
    """Record ``body`` as the worker's status; extend its leases. Returns the answer body."""
    if body is None:
        body = {}
    status = dict(body) if isinstance(body, dict) else {"status": body}
    named = job_id or status.get("job_id") or ""
    if not isinstance(named, str):
        named = str(named)
    running = status.pop("jobs", None)
    if running is not None and (
        not isinstance(running, list) or len(running) > MAX_LISTED or not all(isinstance(j, str) for j in running)
    ):
        raise BadRequest(
            f'"jobs" lists the ids of the jobs this worker runs now: a list of at most {MAX_LISTED} strings',
            code="bad_heartbeat",
        )
    status["worker_id"] = worker
    status["last_seen"] = utcnow()
    # a claim is in the job's history
    result = jobs.queue.heartbeat(worker, json.dumps(status), named, running)
    return {
        "worker_id": worker,
        "leases": {j: iso_from_ms(ms) for j, ms in result["extended"].items()},
        "cancel": sorted(result.get("cancel") or []),
    }


def list_ids(queue):
    redis = queue.redis
    now = queue.now_ms()
    redis.zremrangebyscore(keys.WORKERS, "-inf", now)
    return redis.zrangebyscore(keys.WORKERS, now, "+inf")


def get(queue, worker):
    redis = queue.redis
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.worker_status(worker))
    pipe.hgetall(keys.worker_attributes(worker))
    pipe.smembers(keys.worker_jobs(worker))
    pipe.hget(keys.WORKER_MODULES, worker)
    raw, attributes, held, modules = pipe.execute()
    if raw is None and not attributes:
        raise WorkerNotFound(worker)
    status = json.loads(raw) if raw else {"worker_id": worker, "status": "offline"}
    status["attributes"] = decode_attributes(attributes)
    status["jobs"] = sorted(held)
    status["modules"] = modules.split(",") if modules else None
    return status


def set_attributes(queue, worker, changes):
    changes = attribute_changes(changes)
    if changes:
        queue.redis.hset(keys.worker_attributes(worker), mapping={k: json.dumps(v) for k, v in changes.items()})
    return {"worker_id": worker, "attributes": decode_attributes(queue.redis.hgetall(keys.worker_attributes(worker)))}


def delete(jobs, worker):
    """Forget the worker; the jobs it held go back to their queues now."""
    existed, released = jobs.queue.forget_worker(worker)
    if not existed and not released:
        raise WorkerNotFound(worker)
    return {"worker_id": worker, "released": [e["id"] for e in released]}
