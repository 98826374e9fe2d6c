"""Puzzles: the durable copy of a shared jigsaw (live state is in Redis, publish/board.py).

One document per puzzle with its pieces embedded: a write-back is one
``update_one`` of the whole board, conditional on the sequence number, so an
older snapshot never overwrites a newer one.
"""

from datetime import UTC, datetime

from object_challenge.core.extensions import db

STATUSES = ("generating", "active", "complete")


def _now():
    return datetime.now(UTC)


class Piece(db.EmbeddedDocument):
    id = db.IntField(required=True)
    x = db.IntField(required=True)  # table coordinates of the top-left corner
    y = db.IntField(required=True)
    r = db.IntField(default=0)  # rotation, degrees
    group = db.IntField(required=True)  # smallest piece id of its group (itself when alone)
    immovable = db.BooleanField(default=False)
    cx = db.IntField(required=True)  # the correct position (the solution)
    cy = db.IntField(required=True)

    def to_public(self):
        return {"id": self.id, "x": self.x, "y": self.y, "r": self.r, "group": self.group, "immovable": self.immovable}


class Puzzle(db.Document):
    puzzle_id = db.IntField(required=True, unique=True)
    rows = db.IntField(required=True)
    cols = db.IntField(required=True)
    table_width = db.IntField(required=True)
    table_height = db.IntField(required=True)
    piece_width = db.IntField(required=True)
    piece_height = db.IntField(required=True)
    status = db.StringField(required=True, choices=STATUSES, default="generating")
    seq = db.IntField(default=0)  # the last applied move this copy includes
    owner = db.IntField()
    job_id = db.StringField()
    created = db.DateTimeField(default=_now)
    flushed = db.DateTimeField()
    pieces = db.EmbeddedDocumentListField(document_type=Piece)

    meta = {"collection": "puzzles", "indexes": ["status"]}

    @property
    def size(self):
        return self.rows * self.cols
