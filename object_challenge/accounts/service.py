"""Operator actions on users, tokens, prefixes and grants.

Each change is written to MongoDB and then published to the gateway's snapshot
(``snapshot.publish``), so it reaches the edge within the snapshot poll interval.
"""

from mongoengine import NotUniqueError

from object_challenge.accounts import snapshot
from object_challenge.accounts.models import ROLES, Prefix, User, UserPrefix, new_token
from object_challenge.core.counters import next_id


class AccountError(Exception):
    """An operator mistake: the message says what was wrong and what to do."""


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
    """Create a user; returns ``(user, token)``. A token is generated unless given."""
    if role not in ROLES:
        raise AccountError(f"role '{role}' is unknown; use one of {', '.join(ROLES)}")
    if User.objects(name=name).first():
        raise AccountError(f"a user named '{name}' already exists")
    token = token or new_token()
    user = User(user_id=next_id("user_id"), name=name, role=role)
    user.set_token(token)
    try:
        user.save(force_insert=True)
    except NotUniqueError:
        raise AccountError(f"user '{name}' or that token already exists") from None
    snapshot.publish()
    return user, token


def revoke_token(name):
    user = get_user(name)
    user.set_token(None)
    user.save()
    snapshot.publish()
    return user


def rotate_token(name):
    user = get_user(name)
    token = new_token()
    user.set_token(token)
    user.save()
    snapshot.publish()
    return user, token


def add_prefix(prefix):
    if not prefix or prefix != prefix.strip():
        raise AccountError("a prefix must be a non-empty string without surrounding spaces")
    if Prefix.objects(prefix=prefix).first():
        raise AccountError(f"prefix '{prefix}' already exists")
    found = Prefix(prefix_id=next_id("prefix_id"), prefix=prefix)
    try:
        found.save(force_insert=True)
    except NotUniqueError:
        raise AccountError(f"prefix '{prefix}' already exists") from None
    snapshot.publish()
    return found


def set_grant(user_name, prefix, allowed):
    user, found = get_user(user_name), get_prefix(prefix)
    UserPrefix.objects(user_id=user.user_id, prefix_id=found.prefix_id).update_one(
        set__is_allowed=bool(allowed), upsert=True
    )
    snapshot.publish()


def remove_grant(user_name, prefix):
    user, found = get_user(user_name), get_prefix(prefix)
    deleted = UserPrefix.objects(user_id=user.user_id, prefix_id=found.prefix_id).delete()
    if not deleted:
        raise AccountError(f"user '{user_name}' has no grant on '{prefix}'")
    snapshot.publish()
