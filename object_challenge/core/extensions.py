"""The three store handles, each bound to the app in ``init_app``.

``db`` is MongoEngine (schema'd models), ``mongo`` is flask-pymongo (schemaless
stores: job documents, module data), ``redis`` a proxy to the app's Redis client.
All three come from one ``MONGO_URI`` / ``REDIS_URL``.
"""

import redis as redis_lib
from flask import current_app
from flask_mongoengine import MongoEngine
from flask_pymongo import PyMongo
from redis.backoff import NoBackoff
from redis.retry import Retry

db = MongoEngine()
mongo = PyMongo()


class RedisProxy:
    """``redis.get(...)`` inside an app context reaches that app's client."""

    def init_app(self, app):
        # short timeouts and one retry: a Redis that does not answer is a fast 503
        # (core/errors.py), not a request thread held for seconds
        timeout = app.config.get("STORE_TIMEOUT_SECONDS", 1.0)
        app.extensions["redis"] = redis_lib.Redis.from_url(
            app.config["REDIS_URL"],
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
