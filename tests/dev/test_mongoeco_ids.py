"""The MongoDB stand-in still refuses every duplicate ``_id`` after its whole-collection
scan was limited to numeric ids (object_challenge/dev/mongoeco_ids.py)."""

import uuid

import pytest
from pymongo import MongoClient
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
