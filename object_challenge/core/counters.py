"""Sequential integer ids (user_id, prefix_id) from one atomic counter document each."""

from pymongo import ReturnDocument

from object_challenge.core.extensions import db


def _counters():
    return db.get_db()["counters"]


def next_id(name):
    doc = _counters().find_one_and_update(
        {"_id": name}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    return doc["seq"]


def raise_counter(name, at_least):
    """Make sure the next id handed out is above ``at_least`` (after loading fixtures)."""
    _counters().update_one({"_id": name}, {"$max": {"seq": int(at_least)}}, upsert=True)
