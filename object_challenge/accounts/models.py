"""Users and their API tokens (stored only as a sha256 hash); bucket-name prefixes and grants (seed 004)."""

import hashlib
import hmac
import secrets

from object_challenge.core.extensions import db

ROLES = ("user", "worker", "admin")


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token():
    return "oc_" + secrets.token_urlsafe(24)


class User(db.Document):
    user_id = db.IntField(required=True, unique=True)
    name = db.StringField(required=True, unique=True, max_length=64)
    token_hash = db.StringField(null=True)
    role = db.StringField(required=True, choices=ROLES, default="user")

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
        return {"user_id": self.user_id, "name": self.name, "role": self.role}


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
