"""Store checks behind every health endpoint."""

from object_challenge.core.extensions import db, redis


def check_stores():
    """``{store: problem}`` for each store that does not answer; empty when all do."""
    problems = {}
    try:
        redis.ping()
    except Exception as exc:
        problems["redis"] = f"{exc.__class__.__name__}: {exc}"
    try:
        db.get_db().client.admin.command("ping")
    except Exception as exc:
        problems["mongo"] = f"{exc.__class__.__name__}: {exc}"
    return problems
