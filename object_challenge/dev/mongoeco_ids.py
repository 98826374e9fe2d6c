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
is flat.

The same rule answers a second scan: a write that selects one document by ``_id``
(``delete_one``, a ``DeleteOne`` in ``bulk_write``, ``update_one``) looks the id up by its
stored key and, when that finds nothing, reads the whole collection to make sure. For a
string or ObjectId id the stored-key lookup is the answer, so the scan is skipped for them
(``delete_one`` of an absent id: 10 ms with 100 documents stored, 20 ms with 4,000).

A real MongoDB (``MONGO_URI``) never runs this module.
"""

import functools

from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.query_plan import EqualsCondition
from mongoeco.engines import sqlite
from mongoeco.engines._sqlite_fast_paths import select_first_document_for_plan as by_stored_key
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


def _no_scan_for_absent_ids(select):
    @functools.wraps(select)
    def selected(engine, db_name, coll_name, plan, *, hint=None):
        by_id = hint is None and isinstance(plan, EqualsCondition) and plan.field == "_id"
        if not by_id or id_contains_numeric_value(plan.value):
            return select(engine, db_name, coll_name, plan, hint=hint)
        conn = engine._require_connection()
        return by_stored_key(  # the lookup mongoeco makes first; None is the answer for these ids
            db_name=db_name,
            coll_name=coll_name,
            plan=plan,
            storage_key_for_id=engine._storage_key,
            fetchone=lambda sql, params: conn.execute(sql, params).fetchone(),
            deserialize_document=engine._deserialize_document,
            select_first_document_for_scalar_index_fn=None,  # not called for an _id equality
            select_first_document_for_scalar_range_fn=None,
        )

    selected.oc_patched = True
    return selected


def apply():
    """Patch both engines once (idempotent)."""
    checks = ((SQLiteEngine, "_validate_document_against_unique_indexes"), (MemoryEngine, "_ensure_unique_indexes"))
    for engine, name in checks:
        method = getattr(engine, name)
        if not getattr(method, "oc_patched", False):
            setattr(engine, name, _scan_only_numeric_ids(method))
    name = "_sqlite_runtime_select_first_document_for_plan"  # what SQLiteEngine's writes call
    if not getattr(getattr(sqlite, name), "oc_patched", False):
        setattr(sqlite, name, _no_scan_for_absent_ids(getattr(sqlite, name)))
