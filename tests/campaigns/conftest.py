"""Campaign fixtures: the player API stand-in on a free port, a fresh Mongo database, Redis."""

import itertools
import os

import pytest

_names = itertools.count(1)


@pytest.fixture
def standin():
    """A stand-in with the default population and no rate limit; tests change it via ``state``."""
    from object_challenge.campaigns import playerapi

    running = playerapi.start(max_id=1_200_000, rps=0)
    yield running
    running.stop()


@pytest.fixture
def mongo_db(stores):
    from pymongo import MongoClient

    from object_challenge.campaigns import records

    client = MongoClient(stores.mongo_uri)
    db = client[f"oc_test_campaigns_{os.getpid()}_{next(_names)}"]
    records.ensure_indexes(db)
    yield db
    client.drop_database(db.name)
    client.close()


def _redis(stores, db=0):
    import redis

    client = redis.Redis.from_url(stores.redis_url.rsplit("/", 1)[0] + f"/{db}")
    for key in client.scan_iter("oc:campaigns:*"):
        client.delete(key)
    return client


@pytest.fixture
def redis_client(stores):
    client = _redis(stores)
    yield client
    client.close()


@pytest.fixture
def make_redis(stores):
    """Extra Redis clients (``make_redis(db)``), each its own connection pool."""
    made = []

    def make(db=0):
        made.append(_redis(stores, db))
        return made[-1]

    yield make
    for client in made:
        client.close()


class FlaskAdapter:
    """A requests adapter that hands each call to a Flask app's test client (in-process HTTP)."""

    def __init__(self, app):
        self.app = app

    def send(self, prepared, **_kwargs):
        from urllib.parse import urlsplit

        import requests

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


@pytest.fixture
def app_session(app):
    """A requests session whose ``http://app`` calls go into the test app, with the worker's token."""
    import requests

    session = requests.Session()
    session.mount("http://app", FlaskAdapter(app))
    session.headers["Authorization"] = "Token token_worker"
    return session
