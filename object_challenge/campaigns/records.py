"""The per-pass player records of every campaign: one MongoDB collection and its indexes.

A document is one player found in one pass::

    {"campaign": id, "pass": n, "player_id": int, "battles": int, "diff_battles": int | None,
     "record": {... the API's record ...}, "ingested_at": datetime (first delivery)}

The unique key is the document's ``_id``, ``"<campaign>:<pass>:<player_id>"`` (``record_id``):
unique by definition, so a batch delivered twice has its inserts refused as duplicates, and the
check stays cheap on every engine (mongoeco, the local stand-in, checks a unique secondary index
by scanning: 100 upserts cost seconds at a few thousand records, measured; the ``_id`` is flat).
Two plain indexes keep every read an index seek, whatever the collection holds:

- ``(campaign, pass, player_id)``: a pass's export in player order, counts;
- ``(campaign, player_id, pass)``: one player's passes.

Ingest finds a batch's previous battles in latest.py (reads by ``_id``); ``previous_records``
below, on these indexes, is only its fallback for a repeated or late delivery.
"""

from pymongo import ASCENDING, DESCENDING

from object_challenge.core.counting import count

COLLECTION = "campaign_records"


def collection(db):
    return db[COLLECTION]


def record_id(campaign, pass_no, player_id):
    """The ``_id`` of a player's record in one pass: the insert key (unique by construction)."""
    return f"{campaign}:{int(pass_no)}:{int(player_id)}"


def ensure_indexes(db):
    records = collection(db)
    records.create_index(
        [("campaign", ASCENDING), ("pass", ASCENDING), ("player_id", ASCENDING)], name="campaign_pass_player_id"
    )
    records.create_index(
        [("campaign", ASCENDING), ("player_id", ASCENDING), ("pass", ASCENDING)], name="campaign_player_pass"
    )


def player_passes(db, campaign, player_id):
    """A player's records, oldest pass first (empty list: never found)."""
    cursor = collection(db).find({"campaign": campaign, "player_id": int(player_id)}, {"_id": 0})
    return list(cursor.sort("pass", ASCENDING))


def pass_records(db, campaign, pass_no, batch_size=1000):
    """A cursor over one pass's records in player order (for export)."""
    cursor = collection(db).find({"campaign": campaign, "pass": int(pass_no)}, {"_id": 0}, batch_size=batch_size)
    return cursor.sort("player_id", ASCENDING)


def count_records(db, campaign, pass_no):
    return count(collection(db), {"campaign": campaign, "pass": int(pass_no)})


def previous_records(db, campaign, pass_no, player_ids):
    """``{player_id: (pass, battles)}`` of each player's latest record before ``pass_no``.

    The previous pass answers almost every id with one indexed ``$in``; only ids missing from it
    (new players, or ones the previous pass did not find) are looked up further back.
    """
    records = collection(db)
    player_ids = list(player_ids)
    found = {}
    if pass_no > 1 and player_ids:
        for doc in records.find(
            {"campaign": campaign, "pass": pass_no - 1, "player_id": {"$in": player_ids}},
            {"_id": 0, "player_id": 1, "pass": 1, "battles": 1},
        ):
            found[doc["player_id"]] = (doc["pass"], doc["battles"])
    missing = [i for i in player_ids if i not in found]
    if pass_no > 2 and missing:
        cursor = records.find(
            {"campaign": campaign, "player_id": {"$in": missing}, "pass": {"$lt": pass_no - 1}},
            {"_id": 0, "player_id": 1, "pass": 1, "battles": 1},
        )
        for doc in cursor.sort([("player_id", ASCENDING), ("pass", DESCENDING)]):
            found.setdefault(doc["player_id"], (doc["pass"], doc["battles"]))
    return found
