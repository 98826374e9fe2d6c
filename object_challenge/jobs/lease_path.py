"""The gateway's share of the queue's hot path.

The gateway answers ``GET /newapi/queue/poll`` and ``PATCH /newapi/jobs/{id}/completed``
itself (``lua/oc/job_lease.lua``) by running this service's own poll and complete
scripts by their SHA1s, so both paths make the same decision. What it needs is
published here in ``oc:jobs:gateway``: the SHA1s, the lease settings, the rules of
names (the service's own regular expressions) and the modules whose completions
this service must see (completion hooks). Everything the gateway cannot decide
goes to the service: no settings yet, an unknown SHA1, a refusal to word, a body
outside the plain subset the gateway checks (docs/jobs.md, "Who answers").
"""

import json
import logging

from flask import current_app

from object_challenge.core.extensions import redis
from object_challenge.jobs import keys
from object_challenge.jobs.queue import EXPIRE_BATCH
from object_challenge.jobs.service import MAX_DEPTH, MAX_MODULES, MODULE_NAME, QUEUE_NAME, WORKER_ID, jobs

log = logging.getLogger(__name__)


def settings(service, config, hooked):
    """The hash the gateway reads (every value a string, as Redis gives it back)."""
    queue = service.queue
    values = {
        "poll": queue.scripts.poll.sha,
        "complete": queue.scripts.complete.sha,
        "prefix": keys.PREFIX,
        "lease_ms": queue.lease_ms,
        "lease_seconds": json.dumps(queue.lease_ms / 1000),  # as the service renders it
        "expire_batch": EXPIRE_BATCH,
        "poll_scan": queue.poll_scan,
        "default_queue": config["REDIS_QUEUE_NAME"],
        "queue_re": QUEUE_NAME.pattern,
        "worker_re": WORKER_ID.pattern,
        "module_re": MODULE_NAME.pattern,
        "max_modules": MAX_MODULES,
        "max_depth": MAX_DEPTH,
        "hooked": ",".join(sorted(hooked)),
    }
    return {k: str(v) for k, v in values.items()}


def publish_if_changed():
    """Scheduler task: load the two scripts into Redis and tell the gateway their SHA1s and
    settings, when Redis lacks either (a restart, a SCRIPT FLUSH) or they changed (a release)."""
    app = current_app._get_current_object()
    service = jobs()
    hooked = {module for module, _hook in app.extensions.get("oc.jobs.completed", [])}
    values = settings(service, app.config, hooked)
    published = redis.client.hgetall(keys.GATEWAY)
    if published != values or not all(redis.client.script_exists(values["poll"], values["complete"])):
        service.queue.scripts.load(redis.client)
        redis.client.hset(keys.GATEWAY, mapping=values)
        log.info("queue poll/complete scripts and settings published for the gateway")
