"""The MongoDB stand-in still refuses every duplicate ``_id``, and still finds exactly the
document a write names by ``_id``, after its whole-collection scans were limited to numeric
ids (object_challenge/dev/mongoeco_ids.py)."""

import uuid

import pytest
from mongoeco.engines import sqlite
from pymongo import DeleteOne, MongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from object_challenge.dev.mongoeco_ids import apply


@pytest.fixture
def collection(stores):
    client = MongoClient(stores.mongo_uri, serverSelectionTimeoutMS=5000)
    yield client[f"ids_{uuid.uuid4().hex[:8]}"]["docs"]
    client.close()


def test_a_string_id_written_twice_is_refused(collection):
    collection.insert_one({"_id": "job-1", "n": 1})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": "job-1", "n": 2})
    with pytest.raises(BulkWriteError) as bulk:
        collection.insert_many([{"_id": "job-2"}, {"_id": "job-1"}], ordered=False)
    assert [e["code"] for e in bulk.value.details["writeErrors"]] == [11000]
    assert collection.find_one({"_id": "job-1"})["n"] == 1 and collection.count_documents({}) == 2


def test_numeric_ids_still_compare_by_value(collection):
    collection.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 1.0})  # the case the scan exists for


def test_applying_twice_wraps_once():
    from mongoeco.engines.sqlite import SQLiteEngine

    apply()
    first = SQLiteEngine._validate_document_against_unique_indexes
    apply()
    assert SQLiteEngine._validate_document_against_unique_indexes is first


def test_writes_by_id_on_the_sqlite_engine_find_exactly_their_document(sqlite_stand_in):
    """The stand-in answers an absent string ``_id`` from its stored-key lookup (no scan):
    nothing is touched for it, and present and numeric ids are found as before."""
    client, _ = sqlite_stand_in
    docs = client[f"ids_{uuid.uuid4().hex[:8]}"]["docs"]
    docs.insert_many([{"_id": "job-1", "n": 1}, {"_id": "job-2", "n": 2}, {"_id": 3, "n": 3}])

    assert docs.delete_one({"_id": "job-9"}).deleted_count == 0
    assert docs.update_one({"_id": "job-9"}, {"$set": {"n": 9}}).matched_count == 0
    result = docs.bulk_write([DeleteOne({"_id": "job-1"}), DeleteOne({"_id": "job-9"})], ordered=False)
    assert result.deleted_count == 1
    assert docs.update_one({"_id": 3.0}, {"$set": {"n": 30}}).modified_count == 1  # 3 and 3.0: one _id
    assert docs.delete_one({"_id": 3.0}).deleted_count == 1

    assert [(d["_id"], d["n"]) for d in docs.find()] == [("job-2", 2)]
    assert docs.find_one({"_id": "job-9"}) is None


def test_the_sqlite_patch_wraps_once():
    apply()
    first = sqlite._sqlite_runtime_select_first_document_for_plan
    apply()
    assert sqlite._sqlite_runtime_select_first_document_for_plan is first and first.oc_patched
