"""Operator actions on users, tokens, prefixes and grants.

Each change is written to MongoDB and then published to the gateway's snapshot
(``snapshot.publish``), so it reaches the edge within the snapshot poll interval.
"""

from mongoengine import NotUniqueError

from object_challenge.accounts import snapshot
from object_challenge.accounts.models import ROLES, Prefix, User, UserPrefix, name_problem, new_token, prefix_problem
from object_challenge.core.counters import next_id
from object_challenge.core.extensions import db, redis


class AccountError(Exception):
    """An operator mistake: the message says what was wrong and what to do."""


class StoresDown(AccountError):
    """A store did not answer before anything was changed."""


def stores_answer():
    """Refuse to start a change while a store is down, so that a command finishes or changes nothing."""
    for store, ping in (("redis", redis.ping), ("mongo", lambda: db.get_db().client.admin.command("ping"))):
        try:
            ping()
        except Exception as exc:
            raise StoresDown(
                f"{store} is not answering ({exc.__class__.__name__}); nothing was changed: "
                "start it (make run) or check MONGO_URI / REDIS_URL"
            ) from None


def _publish_or_undo(undo, what):
    """Publish the snapshot; if Redis fails now, undo the MongoDB change and say so."""
    try:
        snapshot.publish()
    except Exception as exc:
        undo()
        raise StoresDown(
            f"redis stopped answering ({exc.__class__.__name__}) before the gateway learnt of {what}; "
            "nothing was changed"
        ) from None


def get_user(name):
    user = User.objects(name=name).first()
    if user is None:
        raise AccountError(f"no user named '{name}'; see `python manage.py user list`")
    return user


def get_prefix(prefix):
    found = Prefix.objects(prefix=prefix).first()
    if found is None:
        raise AccountError(f"no prefix '{prefix}'; see `python manage.py prefix list`")
    return found


def add_user(name, role="user", token=None):
    """Create a user; returns ``(user, token)``. A token is generated unless given. A worker
    is bound to worker ids starting with its name (one token per host, docs/jobs.md)."""
    if role not in ROLES:
        raise AccountError(f"role '{role}' is unknown; use one of {', '.join(ROLES)}")
    problem = name_problem(name)
    if problem:
        raise AccountError(problem)
    stores_answer()
    if User.objects(name=name).first():
        raise AccountError(f"a user named '{name}' already exists")
    if role == "worker":
        _refuse_overlapping_worker_ids(name)
    token = token or new_token()
    user = User(user_id=next_id("user_id"), name=name, role=role)
    if role == "worker":
        user.worker_prefix = name
    user.set_token(token)
    try:
        user.save(force_insert=True)
    except NotUniqueError:
        raise AccountError(f"user '{name}' or that token already exists") from None
    _publish_or_undo(lambda: User.objects(user_id=user.user_id).delete(), f"user '{name}'")
    return user, token


def _refuse_overlapping_worker_ids(name):
    """A bound worker acts for the worker ids starting with its name: two whose names start
    one another (rack1, rack12) would share ids (rack12-1), and each could act for the other."""
    for other in User.objects(worker_prefix__ne=None).only("name", "worker_prefix"):
        prefix = other.worker_prefix
        if prefix and (name.startswith(prefix) or prefix.startswith(name)):
            raise AccountError(
                f"worker '{other.name}' acts for the worker ids starting with '{prefix}'; a worker named "
                f"'{name}' would share some of them: choose a name that neither starts with the other nor "
                "is the start of it"
            )


def delete_user(name):
    """Delete a user and their grants; their token stops working at the gateway."""
    stores_answer()
    user = get_user(name)
    grants = [(g.prefix_id, g.is_allowed) for g in UserPrefix.objects(user_id=user.user_id)]

    def undo():
        user.save(force_insert=True)
        for prefix_id, allowed in grants:
            UserPrefix(user_id=user.user_id, prefix_id=prefix_id, is_allowed=allowed).save()

    UserPrefix.objects(user_id=user.user_id).delete()
    user.delete()
    _publish_or_undo(undo, f"the deletion of '{name}'")
    return user


def _set_token(user, token, what):
    old = user.token_hash
    user.set_token(token)
    user.save()
    _publish_or_undo(lambda: User.objects(user_id=user.user_id).update_one(set__token_hash=old), what)


def revoke_token(name):
    stores_answer()
    user = get_user(name)
    _set_token(user, None, f"the revoked token of '{name}'")
    return user


def rotate_token(name):
    stores_answer()
    user = get_user(name)
    token = new_token()
    _set_token(user, token, f"the new token of '{name}'")
    return user, token


def add_prefix(prefix):
    problem = prefix_problem(prefix)
    if problem:
        raise AccountError(f"{prefix!r}: {problem}")
    stores_answer()
    if Prefix.objects(prefix=prefix).first():
        raise AccountError(f"prefix '{prefix}' already exists")
    found = Prefix(prefix_id=next_id("prefix_id"), prefix=prefix)
    try:
        found.save(force_insert=True)
    except NotUniqueError:
        raise AccountError(f"prefix '{prefix}' already exists") from None
    _publish_or_undo(lambda: Prefix.objects(prefix_id=found.prefix_id).delete(), f"prefix '{prefix}'")
    return found


def remove_prefix(prefix):
    """Remove a prefix and every grant on it: names starting with it are no longer reserved."""
    problem = prefix_problem(prefix)
    if problem:
        raise AccountError(f"{prefix!r}: {problem}")
    stores_answer()
    found = get_prefix(prefix)
    grants = [(g.user_id, g.is_allowed) for g in UserPrefix.objects(prefix_id=found.prefix_id)]

    def undo():
        found.save(force_insert=True)
        for user_id, allowed in grants:
            UserPrefix(user_id=user_id, prefix_id=found.prefix_id, is_allowed=allowed).save()

    UserPrefix.objects(prefix_id=found.prefix_id).delete()
    found.delete()
    _publish_or_undo(undo, f"the removal of prefix '{prefix}'")
    return len(grants)


def set_grant(user_name, prefix, allowed):
    stores_answer()
    user, found = get_user(user_name), get_prefix(prefix)
    grant = UserPrefix.objects(user_id=user.user_id, prefix_id=found.prefix_id)
    old = grant.first()
    grant.update_one(set__is_allowed=bool(allowed), upsert=True)

    def undo():
        if old is None:
            grant.delete()
        else:
            grant.update_one(set__is_allowed=old.is_allowed)

    _publish_or_undo(undo, f"the grant of '{user_name}' on '{prefix}'")


def remove_grant(user_name, prefix):
    stores_answer()
    user, found = get_user(user_name), get_prefix(prefix)
    grant = UserPrefix.objects(user_id=user.user_id, prefix_id=found.prefix_id)
    old = grant.first()
    if old is None or not grant.delete():
        raise AccountError(f"user '{user_name}' has no grant on '{prefix}'")
    _publish_or_undo(
        lambda: UserPrefix(user_id=user.user_id, prefix_id=found.prefix_id, is_allowed=old.is_allowed).save(),
        f"the removal of the grant of '{user_name}' on '{prefix}'",
    )
