"""Fixtures for the store stand-ins' own tests."""

import pytest
from pymongo import MongoClient

from object_challenge.dev.devstores import free_port, start_mongo, wait_for_port


@pytest.fixture(scope="module")
def sqlite_stand_in(tmp_path_factory):
    """The mongoeco wire server on its SQLite engine, as `make run` starts it: (client, file)."""
    tmp = tmp_path_factory.mktemp("mongoeco-sqlite")
    port, path = free_port(), tmp / "stand-in.sqlite"
    with open(tmp / "stand-in.log", "ab") as log:
        process = start_mongo(port, str(path), log)
    try:
        wait_for_port(port, process=process, what="mongoeco")
        client = MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=5000)
        yield client, path
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
