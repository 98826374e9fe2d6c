"""Helpers for the gateway tests: the access log, Redis, timing."""

import json
import time
import uuid

import redis as redis_lib
from helpers import wait_until

NO_BODY = object()


def rid(tag="t"):
    """A fresh, sane request id to find a request again in the access log."""
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def access_log(stack):
    return stack.access_log


def log_entry(stack, request_id, timeout=5.0):
    """The JSON access-log line of ``request_id`` (the log is flushed every second)."""

    def find():
        path = access_log(stack)
        if not path.exists():
            return None
        # a raw request line may carry bytes that are not UTF-8 (nginx's escape=json keeps them)
        for line in reversed(path.read_bytes().decode("utf-8", "replace").splitlines()):
            if request_id in line:
                return json.loads(line)
        return None

    return wait_until(find, timeout=timeout, message=f"access log line of {request_id}")


def redis_of(stack):
    return redis_lib.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)


def upstream_port(stack, service):
    return stack.settings[f"{service.upper()}_ADDR"].rsplit(":", 1)[1]


def timed(call):
    start = time.monotonic()
    value = call()
    return value, time.monotonic() - start


def is_json_error(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert body["message"]
    if code:
        assert body["error"] == code, body
    return body
