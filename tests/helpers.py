"""Small helpers every test module may use."""

import json
import time
from pathlib import Path

CASES = Path(__file__).parent / "cases"


def wait_until(predicate, timeout=5.0, interval=0.02, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def auth(token):
    return {"Authorization": f"Token {token}"}


def load_cases(name):
    return json.loads((CASES / name).read_text())


def forget_connections():
    """MongoEngine caches the connection and each model's collection; each test app has its own db."""
    from mongoengine import disconnect_all

    from object_challenge.app import ALL_MODELS

    disconnect_all()
    for model in ALL_MODELS:
        model._collection = None
