"""Bucket-name prefixes and the per-user grants on them (seed 004)."""
from object_challenge.extensions import db


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
