"""The whole stack, as ``make run`` starts it, on free ports: one per test session.

``stack.url`` is the gateway; ``stack.manage(*args)`` runs manage.py against the
stack's database; ``stack.restart_gateway(**env)`` re-renders nginx with other
settings (and ``stack.restart_gateway()`` with the original ones).
"""
import os
import tempfile

import pytest

from object_challenge.devstack import Stack
from object_challenge.devstores import free_port


def stack_env(**overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGO_URI", "REDIS_URL", "REDIS_URI", "APP_ENV")}
    env.update({
        "GATEWAY_PORT": str(free_port()),
        "MONGO_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "API_ADDR": f"127.0.0.1:{free_port()}",
        "JOBS_ADDR": f"127.0.0.1:{free_port()}",
        "PUBLISH_ADDR": f"127.0.0.1:{free_port()}",
        "STORAGE_ADDR": f"127.0.0.1:{free_port()}",
        "JOB_LEASE_SECONDS": "3",
        "CLIENT_EXPIRY": "10",
        "GUNICORN_WORKERS": "2",
    })
    env.update({k: str(v) for k, v in overrides.items()})
    return env


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
