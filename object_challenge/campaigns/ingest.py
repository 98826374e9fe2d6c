"""Ingest one batch's results: a single unordered bulk upsert into the records collection.

Exactly-once by construction, not by bookkeeping: each record's filter is its ``_id``,
``"<campaign>:<pass>:<player_id>"`` (unique by definition), and every value written is a
function of the batch and of earlier passes only. So a batch delivered twice (an expired lease
whose worker still answers, a retried job) matches the records the first delivery made and
rewrites the same values: no second record, no changed ``diff_battles``. ``inserted`` counts
only records that did not exist (the service counts batches, not ``inserted``: see service.py).

The cost per batch is two indexed reads of ≤ batch-size keys and one bulk write (records.py),
whatever the collection already holds.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from object_challenge.campaigns import records
from object_challenge.campaigns.source import battles_of

DUPLICATE_KEY = 11000


@dataclass
class IngestResult:
    found: int  # non-null records in the batch
    inserted: int  # records this delivery created (0 for a repeated delivery)
    updated: int  # records matched and rewritten (MongoDB: only if a value changed; mongoeco: every match)
    max_id_found: int | None  # highest player id of the batch with a record


def build_operations(campaign, pass_no, answers, previous, battles=battles_of, now=None):
    now = now or datetime.now(UTC)
    operations = []
    for player_id, record in sorted(answers.items()):
        if record is None:
            continue
        count = battles(record)
        before = previous.get(player_id)
        diff = None if before is None else count - before[1]
        operations.append(
            UpdateOne(
                {"_id": records.record_id(campaign, pass_no, player_id)},
                {
                    "$set": {"battles": count, "diff_battles": diff, "record": record},
                    "$setOnInsert": {"campaign": campaign, "pass": pass_no, "player_id": player_id, "ingested_at": now},
                },
                upsert=True,
            )
        )
    return operations


def ingest_batch(db, campaign, pass_no, answers, battles=battles_of):
    """Upsert ``answers`` (``{player_id: record | None}``) as pass ``pass_no`` of ``campaign``.

    ``db`` is a pymongo Database; ``ensure_indexes(db)`` must have run once (the reads use its
    indexes). Concurrent deliveries of one batch are safe through the ``_id`` key alone.
    """
    pass_no = int(pass_no)
    answers = {int(k): v for k, v in answers.items()}
    found_ids = [i for i, v in answers.items() if v is not None]
    if not found_ids:
        return IngestResult(0, 0, 0, None)
    previous = records.previous_records(db, campaign, pass_no, found_ids)
    operations = build_operations(campaign, pass_no, answers, previous, battles)
    result = _bulk_upsert(records.collection(db), operations)
    return IngestResult(len(found_ids), result[0], result[1], max(found_ids))


def _bulk_upsert(collection, operations, retries=2):
    """(inserted, modified); a duplicate-key race between two concurrent deliveries is retried.

    Two upserts of one new key at the same moment can both try to insert; the loser gets E11000.
    On the retry the record exists, so the upsert matches it and changes nothing.
    """
    inserted = modified = 0
    for attempt in range(retries + 1):
        try:
            result = collection.bulk_write(operations, ordered=False)
            return inserted + result.upserted_count, modified + result.modified_count
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if attempt == retries or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            inserted += details.get("nUpserted", 0)
            modified += details.get("nModified", 0)
            operations = [operations[e["index"]] for e in errors]
    raise AssertionError("unreachable")
