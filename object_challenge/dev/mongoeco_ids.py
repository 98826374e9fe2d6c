"""Keep the MongoDB stand-in's inserts from reading the whole collection.

mongoeco 4.11 (the stand-in of ``make run`` and the tests) checks a new document's
``_id`` against the ``_id`` of *every* stored document whenever one document is
written at a time, which is how its wire server applies every insert and upsert. Its
own rule (``mongoeco.core.identity.id_contains_numeric_value``: "Numeric IDs need
logical equality in addition to physical type identity") says the scan is only needed
for numeric ids (``1`` and ``1.0`` are the same ``_id`` but not the same stored key);
for a string or an ObjectId the stored-key lookup it also does finds every duplicate.

Measured with the wire server (``docs/benchmarks.md``, *The MongoDB stand-in*): a
single-document insert cost 6 ms with 200 documents stored and 18 ms with 600 (SQLite
engine), growing with the collection, so a job recorder at 100 jobs/s kept one core
busy and 100k records were out of reach. With the scan limited to numeric ids the cost
is flat. A real MongoDB (``MONGO_URI``) never runs this module.
"""

import functools

from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine


def _scan_only_numeric_ids(method):
    @functools.wraps(method)
    def checked(self, db_name, coll_name, document, *args, scan_payload_id=False, **kwargs):
        if scan_payload_id and not id_contains_numeric_value(document.get("_id")):
            scan_payload_id = False  # the stored-key lookup before the scan finds any duplicate
        return method(self, db_name, coll_name, document, *args, scan_payload_id=scan_payload_id, **kwargs)

    checked.oc_patched = True
    return checked


def apply():
    """Patch both engines once (idempotent)."""
    checks = ((SQLiteEngine, "_validate_document_against_unique_indexes"), (MemoryEngine, "_ensure_unique_indexes"))
    for engine, name in checks:
        method = getattr(engine, name)
        if not getattr(method, "oc_patched", False):
            setattr(engine, name, _scan_only_numeric_ids(method))
