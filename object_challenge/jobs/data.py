"""``/data/{module}/{name}``: a JSON document store per task module.

Database MONGO_DATA_DB, one collection per module (MONGO_DATA_COLL_PREFIX + module),
as the seed lays it out. The stored object comes back exactly as it was sent.
"""

import re

from flask import current_app

from object_challenge.core.errors import BadRequest, NotFound
from object_challenge.core.extensions import mongo
from object_challenge.jobs.store import utcnow

MODULE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DataNotFound(NotFound):
    code = "data_not_found"


def _collection(module):
    if not MODULE.match(module):
        raise BadRequest("module names are 1-64 letters, digits, _ or -", code="bad_module")
    cfg = current_app.config
    return mongo.cx[cfg["MONGO_DATA_DB"]][cfg["MONGO_DATA_COLL_PREFIX"] + module]


def _check_name(name):
    if not name or len(name) > 256:
        raise BadRequest("data names are 1-256 characters", code="bad_name")


def get(module, name):
    _check_name(name)
    doc = _collection(module).find_one({"_id": name})
    if doc is None:
        raise DataNotFound(f"no data {name!r} for module {module!r}")
    return doc["data"]


def put(module, name, data):
    _check_name(name)
    if not isinstance(data, dict):
        raise BadRequest("send a JSON object", code="bad_data")
    result = _collection(module).replace_one(
        {"_id": name}, {"_id": name, "name": name, "data": data, "updated": utcnow()}, upsert=True
    )
    return result.upserted_id is not None


def delete(module, name):
    _check_name(name)
    if not _collection(module).delete_one({"_id": name}).deleted_count:
        raise DataNotFound(f"no data {name!r} for module {module!r}")
