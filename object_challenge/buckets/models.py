"""Buckets created in the storage upstream. The unique index on name decides races."""

from datetime import UTC, datetime

from object_challenge.core.extensions import db


def _now():
    return datetime.now(UTC)


class Bucket(db.Document):
    name = db.StringField(required=True, unique=True, max_length=63)
    owner = db.IntField(required=True)
    created = db.DateTimeField(required=True, default=_now)

    meta = {"collection": "buckets", "indexes": ["owner"]}

    def to_json(self):
        return {"bucket": self.name, "owner": self.owner, "created": self.created.isoformat()}
