"""Gunicorn entry points, one per service: ``gunicorn object_challenge.wsgi:api``."""

from object_challenge.accounts.snapshot import republish_if_missing
from object_challenge.app import SERVICES, create_app
from object_challenge.core.extensions import ensure_indexes
from object_challenge.ops.production import refuse_unsafe_start


def __getattr__(name):
    # built lazily so that importing one entry point does not build the others
    if name not in SERVICES:
        raise AttributeError(name)
    app = create_app(services=[name])
    with app.app_context():
        if app.config["NAME"] == "production":
            # fail closed: no database to check against means no start either
            refuse_unsafe_start()
        try:
            ensure_indexes()
            if name == "api":
                republish_if_missing()
        except Exception as exc:  # a store is not up yet: /healthz says so, the scheduler republishes
            app.logger.warning("start-up store work deferred: %s", exc)
    globals()[name] = app
    return app
