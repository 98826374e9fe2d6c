"""The MongoDB stand-in, with its change delivery off (object_challenge/dev/mongoeco_changes.py),
still stores every kind of write the services make, on the SQLite engine ``make run`` uses,
and writes no change outbox that nobody could read."""

import sqlite3

import pytest
from mongoeco.api._async.collection import AsyncCollection
from pymongo import InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import OperationFailure

from object_challenge.dev.mongoeco_changes import apply


def outbox_rows(path):
    """Changes the engine recorded for delivery (one identity row per change; without the
    patch, 5 inserts leave 5)."""
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "change_outbox_identities" not in tables:
            return 0
        return conn.execute("SELECT count(*) FROM change_outbox_identities").fetchone()[0]


def test_every_write_the_services_make_is_stored(sqlite_stand_in):
    client, path = sqlite_stand_in
    jobs = client["changes_off"]["jobs"]
    jobs.insert_many([{"_id": f"job-{i}", "state": "queued", "history": []} for i in range(5)], ordered=False)
    jobs.update_one({"_id": "job-0"}, {"$set": {"state": "running"}, "$push": {"history": {"event": "leased"}}})
    after = jobs.find_one_and_update({"_id": "job-1"}, {"$set": {"attempt": 2}}, return_document=ReturnDocument.AFTER)
    jobs.bulk_write(
        [
            ReplaceOne({"_id": "job-2"}, {"state": "completed"}, upsert=True),
            ReplaceOne({"_id": "job-9"}, {"state": "failed"}, upsert=True),
            UpdateOne({"_id": "job-3"}, {"$inc": {"n": 1}}),
            InsertOne({"_id": "job-10", "state": "queued"}),
        ],
        ordered=False,
    )
    gone = jobs.delete_many({"_id": {"$in": ["job-4", "job-10"]}}).deleted_count

    assert after["attempt"] == 2 and gone == 2
    assert {d["_id"]: d.get("state") for d in jobs.find()} == {
        "job-0": "running",
        "job-1": "queued",
        "job-2": "completed",
        "job-3": "queued",
        "job-9": "failed",
    }
    assert jobs.find_one({"_id": "job-0"})["history"] == [{"event": "leased"}]
    assert jobs.find_one({"_id": "job-3"})["n"] == 1
    assert outbox_rows(path) == 0  # no change was recorded for delivery


def test_the_wire_server_serves_no_change_stream_to_lose(sqlite_stand_in):
    client, _ = sqlite_stand_in
    with pytest.raises(OperationFailure, match="changeStream"):
        client["changes_off"]["jobs"].watch(max_await_time_ms=100)


def test_applying_twice_wraps_once():
    apply()
    first = AsyncCollection._new_operation_context
    apply()
    assert AsyncCollection._new_operation_context is first and first.oc_patched
