"""Job documents in MongoDB: every job in every state, with its history.

Layout: one collection per state group, named by the seed's settings, so that a
Sisyphus operator finds jobs where the reference server put them:

    MONGO_JOB_COLL_QUEUED     jobs that are queued or running (state field tells which)
    MONGO_JOB_COLL_COMPLETED  completed jobs
    MONGO_JOB_COLL_FAILED     failed jobs
    MONGO_JOB_COLL_CANCELLED  cancelled jobs

``_id`` is the job id (unique index for free, one-key lookups). Finishing moves a
document: write it into the final collection first, then delete from ``queued``, so a
crash in between leaves it in two places (reads prefer the final one), never in none.

While a job is active its order, lease and attempt live in Redis (queue.py) and this
document is the record written after each step; readers overlay the live Redis
state (service.py), so a record that lags by one step is never shown.
"""

from datetime import UTC, datetime

from pymongo import DeleteOne, ReplaceOne, ReturnDocument

from object_challenge.core.counting import count
from object_challenge.core.inserts import insert_new

FINAL_STATES = ("completed", "failed", "cancelled")
IN_CHUNK = 200  # ids per $in: mongoeco's SQLite engine refuses expression trees deeper than 1000


def utcnow():
    return datetime.now(UTC).isoformat()


def iso_from_ms(ms):
    if ms in (None, ""):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat()


def public(doc):
    """The document as the API shows it."""
    if doc is None:
        return None
    doc = dict(doc)
    doc.pop("_id", None)
    return doc


class JobStore:
    def __init__(self, database, queued, completed, failed, cancelled="cancelled"):
        self.db = database
        self.queued = database[queued]
        self.final = {"completed": database[completed], "failed": database[failed], "cancelled": database[cancelled]}

    @classmethod
    def from_config(cls, client, config):
        return cls(
            client[config["MONGO_JOB_DB"]],
            config["MONGO_JOB_COLL_QUEUED"],
            config["MONGO_JOB_COLL_COMPLETED"],
            config["MONGO_JOB_COLL_FAILED"],
            config["MONGO_JOB_COLL_CANCELLED"],
        )

    def insert(self, doc):
        self.queued.insert_one({"_id": doc["job_id"], **doc})

    def insert_many(self, docs):
        self.queued.insert_many([{"_id": doc["job_id"], **doc} for doc in docs], ordered=True)

    def get(self, job_id):
        """The document in whichever collection holds it, or None."""
        # twice: a finish (final upsert, then queued delete) may run between the reads of
        # the final collections and of queued; the second pass then finds it final
        for _ in range(2):
            for collection in (*self.final.values(), self.queued):
                doc = collection.find_one({"_id": job_id})
                if doc is not None:
                    return doc
        return None

    def get_active_many(self, job_ids, chunk=IN_CHUNK):
        job_ids, docs = list(job_ids), {}
        for i in range(0, len(job_ids), chunk):
            docs.update((doc["_id"], doc) for doc in self.queued.find({"_id": {"$in": job_ids[i : i + chunk]}}))
        return docs

    def record(self, job_id, fields, event):
        """Update an active job's record and append ``event``; returns it (None if gone)."""
        return self.queued.find_one_and_update(
            {"_id": job_id},
            {"$set": fields, "$push": {"history": event}},
            return_document=ReturnDocument.AFTER,
        )

    def finish(self, job_id, fields, event):
        """Move an active job to its final collection (``fields["state"]``); idempotent."""
        state = fields["state"]
        doc = self.queued.find_one({"_id": job_id})
        if doc is None:  # already moved (a retry of the same finish) or deleted
            return self.final[state].find_one({"_id": job_id})
        doc.update(fields)
        doc.setdefault("history", []).append(event)
        self.final[state].replace_one({"_id": job_id}, doc, upsert=True)
        self.queued.delete_one({"_id": job_id})
        return doc

    def write(self, final_docs, active_docs):
        """The recorder's batch: finished jobs inserted into their final collection, then
        removed from ``queued``; active ones inserted into ``queued`` (replaced when there
        already). Idempotent."""
        by_state = {}
        for doc in final_docs:
            by_state.setdefault(doc["state"], []).append(doc)
        for state, docs in by_state.items():
            self._insert_or_replace(self.final[state], docs)
        if final_docs:  # one DeleteOne per id: an index lookup each, where the stand-in scans for an $in
            self.queued.bulk_write([DeleteOne({"_id": d["job_id"]}) for d in final_docs], ordered=False)
        if active_docs:  # most are new to `queued`: an insert, and a replace for the others
            self._insert_or_replace(self.queued, active_docs)

    @staticmethod
    def _insert_or_replace(collection, docs):
        """Insert ``docs``; any whose ``_id`` is already there (the recorder stopped after
        writing and before Redis forgot the job, and writes it again) is replaced."""
        documents = [{"_id": d["job_id"], **d} for d in docs]
        stored = insert_new(collection, documents)
        if stored:
            again = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents if d["_id"] in stored]
            collection.bulk_write(again, ordered=False)

    def final_ids(self, job_ids, chunk=IN_CHUNK):
        """The ids among ``job_ids`` that MongoDB has in a final state (one query per final
        collection and chunk, not one per job)."""
        found = set()
        for collection in self.final.values():
            for i in range(0, len(job_ids), chunk):
                found.update(d["_id"] for d in collection.find({"_id": {"$in": job_ids[i : i + chunk]}}, {"_id": 1}))
        return found

    def owned(self, owner_id, limit, offset=0):
        """(jobs of ``owner_id``, newest first, ``limit`` from ``offset``; total)."""
        docs, total = [], 0
        for collection in (self.queued, *self.final.values()):
            total += count(collection, {"owner_id": owner_id})
            docs += list(collection.find({"owner_id": owner_id}).sort("added", -1).limit(offset + limit))
        docs.sort(key=lambda d: d.get("added") or "", reverse=True)
        return [public(d) for d in docs[offset : offset + limit]], total

    def delete(self, job_id):
        """Remove the job from every collection; returns how many documents went."""
        return sum(c.delete_many({"_id": job_id}).deleted_count for c in (self.queued, *self.final.values()))

    def delete_active(self, job_ids, chunk=IN_CHUNK):
        job_ids = list(job_ids)
        for i in range(0, len(job_ids), chunk):
            self.queued.delete_many({"_id": {"$in": job_ids[i : i + chunk]}, "state": "queued"})

    def count(self, state):
        if state in self.final:
            return count(self.final[state])
        return count(self.queued, {"state": state})
