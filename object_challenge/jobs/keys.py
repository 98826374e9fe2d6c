"""Every Redis key of the job queue, built here and only here.

The Lua scripts build per-job keys from the same prefix (``lib.lua``); a test
asserts both sides agree.
"""

from object_challenge.core.keys import key

SERVICE = "jobs"
PREFIX = key(SERVICE, "")  # "oc:jobs:" -- ARGV[1] of every script


def queue(name):
    """LIST of job ids; the head (index 0) is handed out next."""
    return key(SERVICE, "queue", name)


def queue_attributes(name):
    """HASH attribute -> JSON value (``disabled`` -> ``true``/``false``)."""
    return key(SERVICE, "queue-attrs", name)


def delayed(name):
    """ZSET job id -> not_before (ms): queued jobs held back (delay_s, release retry_after_s)."""
    return key(SERVICE, "delayed", name)


def queue_modules(name):
    """HASH module set ("a,b") -> how many jobs needing exactly it wait in the queue."""
    return key(SERVICE, "queue-modules", name)


QUEUES = key(SERVICE, "queues")  # SET of queue names ever used
LEASES = key(SERVICE, "leases")  # ZSET job id -> lease deadline (ms, Redis clock)
FINISHED = key(SERVICE, "finished")  # SET of finished job ids not yet recorded in MongoDB
DIRTY = key(SERVICE, "dirty")  # SET of job ids whose MongoDB record is behind Redis
WORKERS = key(SERVICE, "workers")  # ZSET worker id -> heartbeat expiry (ms)
# HASH counters since this Redis began (metrics): leases_expired, attempts_exhausted, events_posted
STATS = key(SERVICE, "stats")
# HASH the gateway's share of the hot path: poll/complete script SHA1s and settings (lease_path.py)
GATEWAY = key(SERVICE, "gateway")
WORKER_MODULES = key(SERVICE, "worker-modules")  # HASH worker id -> modules it declared on poll ("a,b")


def job(job_id):
    """HASH of a live job: queue, state, attempt, max_attempts, worker, lease_until, ..."""
    return key(SERVICE, "job", job_id)


def history(job_id):
    """LIST of a live job's history events (JSON) after the ones in its document."""
    return key(SERVICE, "history", job_id)


def worker_status(worker_id):
    """STRING: the worker's last heartbeat body (JSON), expires after CLIENT_EXPIRY."""
    return key(SERVICE, "worker", worker_id)


def worker_attributes(worker_id):
    """HASH attribute -> JSON value; outlives the status so ``disabled`` sticks."""
    return key(SERVICE, "worker-attrs", worker_id)


def worker_jobs(worker_id):
    """SET of the running job ids whose lease ``worker_id`` holds."""
    return key(SERVICE, "worker-jobs", worker_id)


# -- job events (events.py; the gateway's twin: lua/oc/keys.lua) ----------------------
EVENTS_JOBS = key(SERVICE, "events-jobs")  # SET of job ids whose events are in Redis (not archived yet)


def events(job_id):
    """STREAM of a job's events, entry id ``attempt-seq``, field ``e``: the event's JSON."""
    return key(SERVICE, "events", job_id)


def events_meta(job_id):
    """HASH count, bytes, last (the last event id), truncated ("1") of a job's events."""
    return key(SERVICE, "events-meta", job_id)


def events_channel(job_id):
    """PUB/SUB channel: each stored event's JSON, as it is stored (the gateway's live stream)."""
    return key(SERVICE, "events-channel", job_id)
