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


class _KnownDown(redis_lib.ConnectionError):
    """Refused without asking Redis: it did not answer a moment ago."""


class _Breaker:
    """Fail fast while Redis is known not to answer.

    A read that times out marks Redis down for ``hold`` seconds: meanwhile every command
    fails at once (a ConnectionError, so a 503 ``store_unavailable``) instead of holding
    its thread for the socket timeout. After that one command at a time probes it (the
    others keep failing fast); the first answer clears the mark. A refused connection is
    fast already and does not mark anything (Redis restarting is used again at once)."""

    def __init__(self, hold):
        self.hold = hold
        self.down_until = 0.0
        self.prober = None  # the thread whose command probes
        self.lock = threading.Lock()

    def check(self):
        if not self.down_until:
            return
        with self.lock:
            now, me = time.monotonic(), threading.get_ident()
            if not self.down_until or self.prober == me:
                return
            if now < self.down_until:
                raise _KnownDown("redis did not answer a moment ago; not waiting for it again yet")
            # this thread probes; the others fail fast until it ends (its timeout, its answer
            # or its error clears or renews the mark; 30 s bounds a probe that never ends)
            self.down_until, self.prober = now + 30, me

    def timed_out(self):
        self.down_until, self.prober = time.monotonic() + self.hold, None

    def answered(self):
        if self.down_until:
            self.down_until, self.prober = 0.0, None


class _FailFastConnection(redis_lib.Connection):
    breaker = None  # set per client (init_app)

    def send_packed_command(self, command, check_health=True):
        self.breaker.check()
        try:
            return super().send_packed_command(command, check_health)
        except redis_lib.TimeoutError:
            self.breaker.timed_out()
            raise
        except _KnownDown:  # from the health check's PING inside: the mark stays
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
        except _KnownDown:
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
        connection_class = type("FailFastConnection", (_FailFastConnection,), {"breaker": _Breaker(timeout)})
        app.extensions["redis"] = redis_lib.Redis.from_url(
            app.config["REDIS_URL"],
            connection_class=connection_class,
            decode_responses=True,
            socket_timeout=max(5.0, timeout),
            socket_connect_timeout=max(timeout, 1.0),
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )

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
