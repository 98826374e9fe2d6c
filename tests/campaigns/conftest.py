"""Campaign fixtures: the player API stand-in on a free port, a fresh Mongo database, Redis."""

import itertools
import os

import pytest
from helpers import FlaskTransport

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


@pytest.fixture
def app_session(app):
    """A requests session whose ``http://app`` calls go into the test app, with the worker's token."""
    import requests

    session = requests.Session()
    session.mount("http://app", FlaskTransport(app))
    session.headers["Authorization"] = "Token token_worker"
    return session
