"""Ingest one batch's results: a single unordered bulk insert into the records collection.

Exactly-once by construction, not by bookkeeping: each record's ``_id`` is
``"<campaign>:<pass>:<player_id>"`` (unique by definition, on every engine), so a record can be
created once and only once. A batch delivered twice (an expired lease whose worker still answers,
a retried job, two deliveries racing) inserts nothing the second time: each of its records is
refused with a duplicate-key error (E11000), which here means "already ingested" and is counted,
not raised. Every value a record holds is a function of the batch and of earlier passes, and the
first delivery's record is the one kept (``ingested_at`` is its time).

Why inserts and not upserts: an insert of a new key is one index probe on MongoDB and flat on
mongoeco (the local stand-in), where an upsert of a new document reads the whole collection in
its query planner (100 upserts: 0.3 s with 200 records stored, about 20 s with 10,000; measured,
docs/benchmarks.md). The insert needs no retry loop either: a duplicate is final.

``diff_battles`` comes from each player's latest earlier record, kept per block of 100 ids in
``campaign_latest`` (latest.py): one read by ``_id`` before the insert, one write by ``_id`` after
it (two of each for a batch that straddles two blocks). So a batch costs a few ``_id`` operations
and one bulk insert, whatever the collection already holds (no query over the records, no read
per record).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from object_challenge.campaigns import latest, records
from object_challenge.campaigns.source import battles_of
from object_challenge.core.inserts import insert_new


@dataclass
class IngestResult:
    found: int  # non-null records in the batch
    inserted: int  # records this delivery created (0 for a repeated delivery)
    duplicates: int  # records that already existed (an earlier delivery made them): left as they were
    max_id_found: int | None  # highest player id of the batch with a record


def build_documents(campaign, pass_no, answers, previous, battles=battles_of, now=None):
    """The record documents of one batch's non-null answers, in player order."""
    now = now or datetime.now(UTC)
    documents = []
    for player_id, record in sorted(answers.items()):
        if record is None:
            continue
        count = battles(record)
        before = previous.get(player_id)
        documents.append(
            {
                "_id": records.record_id(campaign, pass_no, player_id),
                "campaign": campaign,
                "pass": pass_no,
                "player_id": player_id,
                "battles": count,
                "diff_battles": None if before is None else count - before[1],
                "record": record,
                "ingested_at": now,
            }
        )
    return documents


def ingest_batch(db, campaign, pass_no, answers, battles=battles_of, block_origin=0):
    """Insert ``answers`` (``{player_id: record | None}``) as pass ``pass_no`` of ``campaign``.

    ``db`` is a pymongo Database; ``ensure_indexes(db)`` must have run once. Concurrent
    deliveries of one batch are safe through the ``_id`` key alone. ``block_origin``: where the
    campaign's ``campaign_latest`` blocks start (latest.py; the same for every call of a campaign).
    """
    pass_no = int(pass_no)
    answers = {int(k): v for k, v in answers.items()}
    found_ids = [i for i, v in answers.items() if v is not None]
    if not found_ids:
        return IngestResult(0, 0, 0, None)
    blocks = latest.read(db, campaign, found_ids, block_origin)
    seen = latest.entries(blocks)
    previous = {i: seen[i] for i in found_ids if i in seen and seen[i][0] < pass_no}
    later = [i for i in found_ids if i in seen and seen[i][0] >= pass_no]
    if later:  # this pass was (partly) ingested already, or an old pass arrives late: ask the records
        previous.update(records.previous_records(db, campaign, pass_no, later))
    documents = build_documents(campaign, pass_no, answers, previous, battles)
    duplicates = insert_new(records.collection(db), documents)
    counts = {d["player_id"]: d["battles"] for d in documents if d["_id"] not in duplicates}
    if duplicates:  # an earlier delivery made these records: the latest entries take their values
        for doc in records.collection(db).find({"_id": {"$in": sorted(duplicates)}}, {"player_id": 1, "battles": 1}):
            counts[doc["player_id"]] = doc["battles"]
    latest.advance(db, campaign, pass_no, counts, blocks, block_origin)
    inserted = len(documents) - len(duplicates)
    return IngestResult(len(found_ids), inserted, len(duplicates), max(found_ids))
