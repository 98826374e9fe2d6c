"""core.counting.count: the ``count`` command, which the MongoDB stand-in answers past
the size where ``count_documents`` (an aggregation) is refused."""

import uuid

from pymongo import MongoClient

from object_challenge.core.counting import count


def test_count_with_and_without_a_filter_through_the_wire(stores):
    client = MongoClient(stores.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        collection = client[f"count_{uuid.uuid4().hex[:8]}"]["docs"]
        assert count(collection) == 0  # a collection that does not exist yet
        collection.insert_many([{"_id": f"j{i}", "owner_id": i % 3, "queue": "q"} for i in range(30)])
        assert count(collection) == 30
        assert count(collection, {"owner_id": 1}) == 10
        assert count(collection, {"owner_id": 1, "queue": "other"}) == 0
        assert count(collection, {"owner_id": {"$in": [0, 2]}}) == collection.count_documents({"owner_id": {"$ne": 1}})
    finally:
        client.close()
