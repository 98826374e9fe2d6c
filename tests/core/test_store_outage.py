"""A store that is down is a fast 503 naming it, and the app recovers on its own.

These tests stop and start the stores, so they use stores of their own (not the
session's ``stores`` fixture the other tests share).
"""

import time

import pytest
from helpers import auth

from object_challenge.dev.devstores import start_mongo, start_redis, wait_for_port


@pytest.fixture
def own_stores(root_conftest):
    stores = root_conftest.Stores().start()
    yield stores
    for process in stores.processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def _restart(stores, which):
    log = open(stores.tmp / "stores.log", "ab")
    if which == "redis":
        stores.processes[1] = start_redis(stores.redis_port, stores.tmp, log)
        wait_for_port(stores.redis_port, process=stores.processes[1])
    else:
        stores.processes[0] = start_mongo(stores.mongo_port, None, log)
        wait_for_port(stores.mongo_port, process=stores.processes[0])


def _stop(stores, which):
    process = stores.processes[1 if which == "redis" else 0]
    process.kill()
    process.wait(timeout=10)


@pytest.fixture
def outage_app(own_stores, monkeypatch, root_conftest):
    from helpers import FlaskTransport, forget_connections

    from object_challenge.accounts import fixtures, snapshot
    from object_challenge.app import create_app
    from object_challenge.buckets import service
    from object_challenge.core.extensions import ensure_indexes

    forget_connections()
    app = create_app(root_conftest.make_config(own_stores))
    with app.app_context():
        ensure_indexes()
        fixtures.load()
        snapshot.publish()
    monkeypatch.setattr(service._session, "get_adapter", lambda url: FlaskTransport(app))
    yield app
    forget_connections()


def _timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_redis_down_is_a_fast_503_naming_it_and_recovers(own_stores, outage_app):
    client = outage_app.test_client()
    url = "/newapi/puzzle/1/"
    assert client.get(url, headers=auth("token_1")).status_code == 404  # no puzzle yet, Redis up
    _stop(own_stores, "redis")
    for _ in range(3):
        answer, took = _timed(lambda: client.get(url, headers=auth("token_1")))
        assert answer.status_code == 503, answer.get_data(as_text=True)
        body = answer.get_json()
        assert body["error"] == "store_unavailable" and body["store"] == "redis"
        assert "redis" in body["message"] and answer.headers["Retry-After"]
        assert took < 2.5, f"a Redis outage held the request {took:.1f} s"
    _restart(own_stores, "redis")
    assert client.get(url, headers=auth("token_1")).status_code == 404


def test_mongo_down_is_a_fast_503_on_bucket_create_and_list_and_recovers(own_stores, outage_app):
    client = outage_app.test_client()
    assert client.post("/bucket", json={"bucket": "before1"}, headers=auth("token_1")).status_code == 201
    _stop(own_stores, "mongo")
    for call in (
        lambda: client.post("/bucket", json={"bucket": "during1"}, headers=auth("token_1")),
        lambda: client.get("/newapi/buckets", headers=auth("token_1")),
    ):
        answer, took = _timed(call)
        assert answer.status_code == 503, answer.get_data(as_text=True)
        assert answer.get_json()["error"] == "store_unavailable"
        assert answer.get_json()["store"] == "mongo"
        assert took < 2.5, f"a MongoDB outage held the request {took:.1f} s"
    _restart(own_stores, "mongo")  # the memory engine comes back empty: load the users again
    from object_challenge.accounts import fixtures
    from object_challenge.core.extensions import ensure_indexes

    def recovered():
        try:
            with outage_app.app_context():
                ensure_indexes()
                fixtures.load()
            return True
        except Exception:
            return False

    from helpers import wait_until

    wait_until(recovered, timeout=15, message="MongoDB back")
    answer = client.post("/bucket", json={"bucket": "after1"}, headers=auth("token_1"))
    assert answer.status_code == 201, answer.get_data(as_text=True)


def test_a_redis_that_hangs_is_a_503_and_then_fails_fast_until_it_answers(own_stores, outage_app):
    """A Redis that accepts connections but does not answer (stopped, a full network queue): the
    first request waits at most the socket timeout, later ones fail at once while it is known
    to be down (or after a PING of at most STORE_TIMEOUT_SECONDS), and it is used again as soon
    as it answers (issue 17: the publish service held
    each request 40 s, one 5 s timeout and its retry per Redis call, and the gateway gave 504)."""
    import signal

    client = outage_app.test_client()
    url = "/newapi/puzzle/1/"
    assert client.get(url, headers=auth("token_1")).status_code == 404
    # as in a long-running service: pooled connections idle past health_check_interval send
    # a PING first, whose own timeout must not clear the mark
    pool = outage_app.extensions["redis"].connection_pool
    for connection in pool._available_connections:
        connection.next_health_check = 0
    redis_process = own_stores.processes[1]
    redis_process.send_signal(signal.SIGSTOP)
    try:
        took = []
        for _ in range(4):
            answer, seconds = _timed(lambda: client.get(url, headers=auth("token_1")))
            assert answer.status_code == 503, answer.get_data(as_text=True)
            assert answer.get_json()["store"] == "redis"
            took.append(seconds)
        assert took[0] < 7, f"the first request waited {took[0]:.1f} s (socket timeout 5 s)"
        assert max(took[1:]) < 0.5, f"a Redis known to be down still held requests: {took}"
        # past STORE_TIMEOUT_SECONDS (1 s) a request asks again, but waits at most that long
        for _ in range(2):
            time.sleep(1.2)
            answer, seconds = _timed(lambda: client.get(url, headers=auth("token_1")))
            assert answer.status_code == 503 and seconds < 2, (answer.status_code, seconds)
    finally:
        redis_process.send_signal(signal.SIGCONT)
    from helpers import wait_until

    wait_until(
        lambda: client.get(url, headers=auth("token_1")).status_code == 404, timeout=10, message="Redis used again"
    )
