"""The ``players`` task module: fetch one batch from the player API, post its results.

A job's data is ``{"campaign_id", "pass", "batch", "start", "end"}``; nothing else comes from the
client. The base URL, the API keys and their rate come from this worker's settings
(``PLAYER_API_URL``, ``PLAYER_API_KEYS``, ``PLAYER_SOURCE_RPS``); the keys' token buckets live in
the worker's Redis (``REDIS_URL``), so every worker sharing a key shares its rate.

The results go back as JSON to ``POST /newapi/campaigns/{id}/batches/{n}/results`` with the
worker's own token, through the same base URL the worker polls (``job["client"]`` when the
worker provides it, else ``GATEWAY_HOST:GATEWAY_PORT`` and ``WORKER_TOKEN``). The server ingests
them once; a batch already done is skipped before any API call.
"""

import functools
import logging
import threading
import time

import redis as redis_lib
import requests

from object_challenge.campaigns.source import PlayerSource
from object_challenge.core import config as config_module
from object_challenge.jobs.tasks import TaskFailed, register_task

log = logging.getLogger(__name__)
_lock = threading.Lock()
POST_ATTEMPTS = 5


@functools.cache
def settings():
    return config_module.load()


@functools.cache
def _redis():
    return redis_lib.Redis.from_url(settings().REDIS_URL, socket_timeout=5, socket_connect_timeout=2)


@functools.cache
def player_source():
    cfg = settings()
    keys = [k.strip() for k in cfg.PLAYER_API_KEYS.split(",") if k.strip()]
    return PlayerSource(cfg.PLAYER_API_URL, keys, _redis(), cfg.PLAYER_SOURCE_RPS)


class _Server:
    """Where results go: the worker's own client when it gives one, else the settings' gateway."""

    def __init__(self, job):
        client = job.get("client") if isinstance(job, dict) else None
        if client is not None:
            self.url, self.session = client.url, client.session
        else:
            cfg = settings()
            self.url = f"http://{cfg.GATEWAY_HOST}:{cfg.GATEWAY_PORT}/newapi"
            self.session = requests.Session()
            self.session.headers["Authorization"] = f"Token {cfg.WORKER_TOKEN or 'token_worker'}"

    def call(self, method, path, body=None):
        """JSON answer; retried on network errors and 5xx/429 (the post is idempotent)."""
        delay = 0.2
        for attempt in range(1, POST_ATTEMPTS + 1):
            try:
                response = self.session.request(method, self.url + path, json=body, timeout=30)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        raise TaskFailed(f"{method} {path}: {response.status_code} {response.text[:200]}")
                    return response.json()
                problem = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == POST_ATTEMPTS:
                raise TaskFailed(f"{method} {path}: {problem}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")


def _first_delivery(data, job):
    """True when no earlier delivery of this batch can exist: the batch's first job
    (``attempts_before`` 0), on its first attempt. Any other delivery asks whether the batch is
    done before calling the API (a results post of a done batch is a harmless duplicate anyway:
    the GET only saves the API call, and costs a round trip through the gateway and MongoDB)."""
    return data.get("attempts_before") == 0 and int((job or {}).get("attempt") or 0) == 1


@register_task("players")
def players(data, job):
    """Fetch ids ``start..end`` of one batch and post them as the batch's results."""
    try:
        campaign_id, n = str(data["campaign_id"]), int(data["batch"])
        start, end = int(data["start"]), int(data["end"])
    except (KeyError, TypeError, ValueError):
        raise TaskFailed("players needs {campaign_id, batch, start, end}") from None
    if not 0 < end - start + 1 <= 100:
        raise TaskFailed("a batch holds 1 to 100 ids")
    server = _Server(job)
    path = f"/campaigns/{campaign_id}/batches/{n}"
    if not _first_delivery(data, job) and server.call("GET", path).get("state") == "done":
        return {"batch": n, "skipped": "already done"}  # delivered before (a lease that ran out)
    with _lock:  # one source per process; its session is not shared between threads
        answers = player_source().fetch_range(start, end)
    body = {"job_id": job.get("job_id"), "players": {str(k): v for k, v in answers.items()}}
    answer = server.call("POST", path + "/results", body)
    return {"batch": n, "found": sum(1 for v in answers.values() if v is not None), "ingested": answer["ingested"]}
