"""Fixtures: real stores for the whole session, a fresh database per test.

- ``stores``: a mongoeco wire server (memory engine) and a redis-server, on free ports.
- ``app``: the app with every service, on a fresh Mongo database and a flushed Redis,
  fixtures loaded and the gateway snapshot published.
- ``client``, ``runner``, ``redis``: as in Flask's tutorial.
"""

import itertools
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import FlaskTransport, forget_connections  # noqa: E402

from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402
from object_challenge.dev.devstores import free_port, start_mongo, start_redis, wait_for_port  # noqa: E402

_db_names = itertools.count(1)


class Stores:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="oc-test-stores-"))
        self.mongo_port, self.redis_port = free_port(), free_port()
        self.mongo_uri = f"mongodb://127.0.0.1:{self.mongo_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.processes = []

    def start(self):
        log = open(self.tmp / "stores.log", "ab")
        self.processes.append(start_mongo(self.mongo_port, None, log))
        wait_for_port(self.mongo_port, process=self.processes[-1], what="mongoeco")
        self.processes.append(start_redis(self.redis_port, self.tmp, log))
        wait_for_port(self.redis_port, process=self.processes[-1], what="redis-server")
        return self

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def root_conftest():
    """This module, for tests that need its helpers (``Stores``, ``make_config``, ``stack_env``):
    ``from conftest import`` would find the nearest package conftest instead."""
    from types import SimpleNamespace

    return SimpleNamespace(
        Stores=Stores,
        make_config=make_config,
        stack_env=stack_env,
        forget_connections=forget_connections,
    )


@pytest.fixture(scope="session")
def stores():
    stores = Stores().start()
    yield stores
    stores.stop()


def make_config(stores, **overrides):
    from object_challenge.core.config import load

    n = next(_db_names)
    environ = {
        "APP_ENV": "testing",
        "MONGO_URI": f"{stores.mongo_uri}/oc_test_{os.getpid()}_{n}",
        "REDIS_URL": stores.redis_url,
        "MONGO_JOB_DB": f"oc_test_jobs_{os.getpid()}_{n}",
        "MONGO_DATA_DB": f"oc_test_data_{os.getpid()}_{n}",
    }
    environ.update({k: str(v) for k, v in overrides.items()})
    return load("testing", environ)


@pytest.fixture
def config(stores):
    return make_config(stores)


@pytest.fixture
def app(config):

    from object_challenge.accounts import fixtures, snapshot
    from object_challenge.app import create_app
    from object_challenge.core.extensions import ensure_indexes, redis

    forget_connections()
    app = create_app(config)
    with app.app_context():
        redis.flushdb()
        ensure_indexes()
        fixtures.load()
        snapshot.publish()
    yield app
    with app.app_context():
        from object_challenge.core.extensions import db

        client = db.get_db().client
        for name in (config.MONGODB_SETTINGS["host"].rsplit("/", 1)[1], config.MONGO_JOB_DB, config.MONGO_DATA_DB):
            client.drop_database(name)
    forget_connections()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def redis(app):
    from object_challenge.core.extensions import redis as proxy

    with app.app_context():
        yield proxy.client


@pytest.fixture(autouse=True)
def storage_in_process(request, monkeypatch):
    """Route the admission service's storage calls into the test app (Flask-level tests only)."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from object_challenge.buckets import service

    session = service._session
    monkeypatch.setattr(session, "get_adapter", lambda url: FlaskTransport(app))
    yield


# -- the whole stack, as `make run` starts it, on free ports: one per test session ----------
# ``stack.url`` is the gateway; ``stack.manage(*args)`` runs manage.py against the
# stack's database; ``stack.restart_gateway(**env)`` re-renders nginx with other
# settings (and ``stack.restart_gateway()`` with the original ones).


def stack_env(**overrides):
    return isolated_env(**{"JOB_LEASE_SECONDS": 3, "CLIENT_EXPIRY": 10, "GUNICORN_WORKERS": 2, **overrides})


@pytest.fixture(scope="session")
def stack():
    var = tempfile.mkdtemp(prefix="oc-test-stack-")
    stack = Stack(env=stack_env(), var_dir=var, mongo_file=False, quiet=True, workers=1)
    stack.start()
    stack.base_env = dict(stack.env)
    yield stack
    stack.stop()


@pytest.fixture
def gateway(stack):
    """The stack's gateway URL, with the gateway's original settings restored afterwards."""
    yield stack.url
    if stack.env != stack.base_env:
        stack.env = dict(stack.base_env)
        stack.restart_gateway()


def pytest_collection_modifyitems(items):
    """Tests that need the whole stack (nginx, gunicorn, workers) carry the `stack` marker:
    `make test PYTEST_ARGS='-m "not stack"'` runs the rest in a fraction of the time."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()) or "gateway" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
