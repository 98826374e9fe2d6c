"""Small helpers every test module may use."""

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

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


def create_puzzle(stack, rows, cols, width=1000, height=800, wait=30.0):
    """``POST /newapi/puzzle/`` as the admin, then wait until the stack's worker has generated
    the pieces (``status`` active); returns the puzzle id."""
    answer = requests.post(
        f"{stack.url}/newapi/puzzle/",
        headers=auth("token_admin"),
        timeout=15,
        json={"rows": rows, "cols": cols, "table_width": width, "table_height": height},
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) >= {"puzzle_id", "job_id"}
    puzzle_id = body["puzzle_id"]

    def active():
        state = requests.get(f"{stack.url}/newapi/puzzle/{puzzle_id}/", headers=auth("token_1"), timeout=15).json()
        return state if state.get("status") == "active" else None

    wait_until(active, timeout=wait, interval=0.1, message="the worker to generate the pieces")
    return puzzle_id


class FlaskTransport:
    """A requests transport adapter that hands each call to ``app``'s test client (in-process
    HTTP): the admission service's storage calls, a worker's calls to the jobs routes."""

    def __init__(self, app):
        self.app = app

    def send(self, prepared, **_kwargs):
        url = urlsplit(prepared.url)
        answer = self.app.test_client().open(
            url.path, method=prepared.method, data=prepared.body, headers=dict(prepared.headers), query_string=url.query
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers.update(answer.headers)
        response.url = prepared.url
        response.request = prepared
        return response

    def close(self):
        pass
