"""Insert documents whose ``_id`` may already be stored, in one round trip.

A plain unordered ``insert_many`` is the cheap write on MongoDB (one index probe per new
key) and on the local stand-in, whose upsert of a new ``_id`` reads the whole collection
(docs/benchmarks.md). A document whose ``_id`` exists is refused with E11000 and left as
stored; the caller decides what that means (campaigns: "already ingested"; the job
recorder: write it again).
"""

from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def insert_new(collection, documents):
    """Insert ``documents`` (each with its ``_id``); returns the ``_id`` s that were already
    stored (their documents left as they were). Any other write error is raised."""
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {documents[e["index"]]["_id"] for e in errors}
    return set()
