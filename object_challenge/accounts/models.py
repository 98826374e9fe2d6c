"""Users and their API tokens (stored only as a sha256 hash); bucket-name prefixes and grants (seed 004)."""

import hashlib
import hmac
import re
import secrets

from object_challenge.core.extensions import db

ROLES = ("user", "worker", "admin")

# User names travel to the services in a header (X-User-Name): ASCII letters, digits,
# '.', '_' and '-', starting with a letter or digit, 1 to 64 characters (README).
NAME_RULE = "1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def name_problem(name):
    """Why ``name`` cannot be a user name, or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return f"user name {name!r} is not allowed: a user name is {NAME_RULE}"
    return None


# A prefix is the start of bucket names, so it follows the bucket naming rules
# (buckets/names.py, which this layer may not import): lowercase letters, digits,
# '-' and '.', 1 to 63 characters, starting with a letter or digit, no '..', not 'xn--'.
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


def prefix_problem(prefix):
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        return (
            "a prefix is 1 to 63 lowercase letters, digits, '-' or '.', starting with a letter or "
            "digit (the bucket naming rules)"
        )
    if ".." in prefix:
        return "a prefix must not contain two adjacent periods (the bucket naming rules)"
    if prefix.startswith("xn--"):
        return "a prefix must not start with 'xn--' (the bucket naming rules)"
    return None


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token():
    return "oc_" + secrets.token_urlsafe(24)


class User(db.Document):
    user_id = db.IntField(required=True, unique=True)
    name = db.StringField(required=True, unique=True, max_length=64)
    token_hash = db.StringField(null=True)
    role = db.StringField(required=True, choices=ROLES, default="user")
    # a worker made by `user add NAME --role worker` may act only for worker ids starting
    # with this (its name); None: unbound (the fixture worker, shared by the reference worker)
    worker_prefix = db.StringField(null=True)

    meta = {
        "collection": "users",
        "indexes": [{"fields": ["token_hash"], "unique": True, "sparse": True}],
    }

    @classmethod
    def by_token(cls, token):
        """The user holding ``token``, or None. The stored hash is compared in constant time."""
        if not token:
            return None
        digest = hash_token(token)
        user = cls.objects(token_hash=digest).first()
        if user is None or not hmac.compare_digest(user.token_hash or "", digest):
            return None
        return user

    def set_token(self, token):
        self.token_hash = hash_token(token) if token else None

    def to_identity(self):
        identity = {"user_id": self.user_id, "name": self.name, "role": self.role}
        if self.worker_prefix:  # a bound worker (the gateway's poll and completion check it)
            identity["worker_prefix"] = self.worker_prefix
        return identity


class Prefix(db.Document):
    prefix_id = db.IntField(required=True, unique=True)
    prefix = db.StringField(required=True, unique=True, min_length=1, max_length=63)

    meta = {"collection": "prefixes"}


class UserPrefix(db.Document):
    user_id = db.IntField(required=True)
    prefix_id = db.IntField(required=True)
    is_allowed = db.BooleanField(required=True)

    meta = {
        "collection": "user_prefixes",
        "indexes": [{"fields": ["user_id", "prefix_id"], "unique": True}, "prefix_id"],
    }
