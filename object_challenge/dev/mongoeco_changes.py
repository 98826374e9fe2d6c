"""Keep the MongoDB stand-in from delivering change events no client can read.

mongoeco 4.11 (the stand-in of ``make run`` and the tests) feeds change streams from a
durable outbox: after every write its collection layer hands the committed changes to
the client's change hub (``CollectionRuntimeCoordinator._dispatch_engine_changes``), and
on the SQLite engine that takes a consumer lease (a SQLite commit), starts a heartbeat
thread, reads the outbox back, decodes each change and checkpoints it (a commit per
change). Its wire server, the only way our processes reach it, refuses ``$changeStream``
("Unsupported aggregation stage"), so that delivery feeds a hub nobody can watch. This
module turns it off in the wire server's process; the engine still writes its outbox
(bounded, 10,000 entries) as before.

Measured with the wire server (``docs/benchmarks.md``, *The MongoDB stand-in*): a
recorded job document (``insert_many`` then ``delete_many``, batches of 50, SQLite
engine) cost 2.7-3.5 ms of the stand-in's CPU per document and operation with delivery
and 1.7-2.4 ms without. A real MongoDB (``MONGO_URI``) never runs this module.
"""

import functools

from mongoeco.api._async._collection_runtime import CollectionRuntimeCoordinator
from mongoeco.api._async.collection import AsyncCollection
from mongoeco.core.operation_context import ChangePublicationPolicy


def _no_delivery(self, *args, **kwargs):
    return None


def _unpublished(method):
    @functools.wraps(method)
    def create(self, *args, **kwargs):
        kwargs["publication"] = ChangePublicationPolicy.DISABLED
        return method(self, *args, **kwargs)

    create.oc_patched = True
    return create


def apply():
    """Patch the collection layer once (idempotent)."""
    if getattr(AsyncCollection._new_operation_context, "oc_patched", False):
        return
    AsyncCollection._new_operation_context = _unpublished(AsyncCollection._new_operation_context)
    CollectionRuntimeCoordinator._prepare_engine_change_delivery = _no_delivery
    CollectionRuntimeCoordinator._dispatch_engine_changes = _no_delivery
