"""The three store handles, each bound to the app in ``init_app``.

``db`` is MongoEngine (schema'd models), ``mongo`` is flask-pymongo (schemaless
stores: job documents, module data), ``redis`` a proxy to the app's Redis client.
All three come from one ``MONGO_URI`` / ``REDIS_URL``.
"""

import threading
import time

import redis as redis_lib
from flask import current_app
from flask_mongoengine import MongoEngine
from flask_pymongo import PyMongo
from redis.backoff import NoBackoff
from redis.retry import Retry

db = MongoEngine()
mongo = PyMongo()


class RedisNotAnswering(redis_lib.ConnectionError):
    """Refused without asking Redis: it did not answer a moment ago."""


class _Breaker:
    """Fail fast while Redis is known not to answer.

    A read that times out marks Redis down for ``hold`` seconds (STORE_TIMEOUT_SECONDS):
    meanwhile every command fails at once (a ConnectionError, so a 503 ``store_unavailable``)
    instead of holding its thread for the socket timeout. After that the next command first
    sends a PING on a connection of its own that waits at most ``hold`` (one thread at a
    time; the others keep failing at once): an answer clears the mark, silence renews it.
    A refused connection is fast already and marks nothing (a restarting Redis is used again
    at once)."""

    def __init__(self, hold):
        self.hold = hold
        self.down_until = 0.0
        self.probe_kwargs = None  # the client's connection settings with short timeouts (init_app)
        self.lock = threading.Lock()

    def check(self):
        if not self.down_until:
            return
        if time.monotonic() < self.down_until or not self.lock.acquire(blocking=False):
            raise RedisNotAnswering("redis did not answer a moment ago; not waiting for it again yet")
        try:
            if not self.down_until:
                return
            if self._answers():
                self.down_until = 0.0
                return
            self.down_until = time.monotonic() + self.hold
            raise RedisNotAnswering(f"redis did not answer a PING within {self.hold:g} s")
        finally:
            self.lock.release()

    def _answers(self):
        probe = redis_lib.Connection(**self.probe_kwargs)
        try:
            probe.connect()
            probe.send_command("PING")
            probe.read_response()
            return True
        except redis_lib.RedisError:
            return False
        finally:
            probe.disconnect()

    def timed_out(self):
        self.down_until = time.monotonic() + self.hold

    def answered(self):
        if self.down_until:
            self.down_until = 0.0


class _FailFastConnection(redis_lib.Connection):
    breaker = None  # set per client (init_app)

    def send_packed_command(self, command, check_health=True):
        self.breaker.check()
        try:
            return super().send_packed_command(command, check_health)
        except redis_lib.TimeoutError:
            self.breaker.timed_out()
            raise
        except RedisNotAnswering:  # from the health check's PING inside: the mark stays
            raise
        except redis_lib.ConnectionError:
            self.breaker.answered()  # refused or reset: not hanging, and fast to find out again
            raise

    def read_response(self, *args, **kwargs):
        try:
            response = super().read_response(*args, **kwargs)
        except redis_lib.TimeoutError:
            self.breaker.timed_out()
            raise
        except RedisNotAnswering:
            raise
        except redis_lib.RedisError:
            self.breaker.answered()
            raise
        self.breaker.answered()
        return response


class RedisProxy:
    """``redis.get(...)`` inside an app context reaches that app's client."""

    def init_app(self, app):
        # short timeouts and one retry: a Redis that does not answer is a fast 503
        # (core/errors.py), not a request thread held for seconds. The read timeout (5 s)
        # leaves room for a slow script on a loaded host; once a read timed out, Redis is
        # known down and commands fail at once for STORE_TIMEOUT_SECONDS (_Breaker)
        timeout = app.config.get("STORE_TIMEOUT_SECONDS", 1.0)
        breaker = _Breaker(timeout)
        connection_class = type("FailFastConnection", (_FailFastConnection,), {"breaker": breaker})
        client = app.extensions["redis"] = redis_lib.Redis.from_url(
            app.config["REDIS_URL"],
            connection_class=connection_class,
            decode_responses=True,
            socket_timeout=max(5.0, timeout),
            socket_connect_timeout=max(timeout, 1.0),
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
        breaker.probe_kwargs = {
            **client.connection_pool.connection_kwargs,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 0),
        }

    @property
    def client(self):
        return current_app.extensions["redis"]

    def __getattr__(self, name):
        return getattr(current_app.extensions["redis"], name)


redis = RedisProxy()


def redis_now_ms(client=redis):
    """Redis's clock (TIME) in ms: the clock the Lua scripts stamp with, not this host's."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def init_app(app):
    # what the service packages add in their register(app): models (indexes made at
    # start and by `init`) and periodic tasks (run by `manage.py scheduler`)
    app.extensions["oc.models"] = []
    app.extensions["oc.schedule"] = []
    # flask-mongoengine-3 keeps the first app's config on the extension object and
    # reuses it for every later app (one per test, or several in one process):
    # forget it so that each app connects with its own MONGODB_SETTINGS.
    db.config = None
    db.init_app(app)
    timeout_ms = int(app.config.get("STORE_TIMEOUT_SECONDS", 1.0) * 1000)
    mongo.init_app(
        app,
        uri=app.config["MONGO_URI"],
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=5000,  # also the monitor's heartbeat timeout: a busy server is not a dead one
        socketTimeoutMS=30000,
    )
    redis.init_app(app)


def ensure_indexes():
    """Create every declared index of the app's models (idempotent); at start and by `init`."""
    for model in current_app.extensions["oc.models"]:
        model.ensure_indexes()
