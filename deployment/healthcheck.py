#!/usr/bin/env python
"""The containers' health checks (docker-compose.yml ``healthcheck.test``).

    python deployment/healthcheck.py http URL   # 2xx within 3 s (services: /healthz)
    python deployment/healthcheck.py stores     # MongoDB and Redis answer (scheduler)
    python deployment/healthcheck.py worker ID  # stores answer and worker ID heartbeats

Exit 0 healthy, 1 not (the reason on stderr, which `docker inspect` shows).
The python:3.13-slim image has no curl, hence this file.
"""

import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TIMEOUT = 3


def check_http(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # raises on 4xx/5xx
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"{url} answered {answer.status}")


def _stores():
    # the store clients and the package load only for the checks that use them: the
    # http check, run every few seconds in each service container, stays a bare urllib call
    import pymongo  # noqa: PLC0415 -- see above
    import redis  # noqa: PLC0415 -- see above

    from object_challenge.core.config import load  # noqa: PLC0415 -- see above

    cfg = load()
    client = pymongo.MongoClient(cfg.MONGO_URI, serverSelectionTimeoutMS=TIMEOUT * 1000)
    try:
        client.admin.command("ping")
    finally:
        client.close()
    red = redis.Redis.from_url(cfg.REDIS_URL, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    red.ping()
    return red


def check_stores():
    _stores().close()


def check_worker(worker_id):
    from object_challenge.jobs import keys  # noqa: PLC0415 -- as in _stores: only the worker check needs it

    red = _stores()
    try:
        if not red.exists(keys.worker_status(worker_id)):
            raise RuntimeError(f"worker {worker_id!r} has no live heartbeat in Redis")
    finally:
        red.close()


def main(argv):
    checks = {"http": (check_http, 1), "stores": (check_stores, 0), "worker": (check_worker, 1)}
    if not argv or argv[0] not in checks or len(argv) - 1 != checks[argv[0]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    check, _arity = checks[argv[0]]
    try:
        check(*argv[1:])
    except Exception as exc:
        print(f"unhealthy: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
