"""Campaign and batch documents in MongoDB (the records themselves: records.py).

``campaigns``: one document per campaign::

    {"_id": campaign_id, "name" (unique), "source": "players", "range": {"start", "end"} (the range
     the next pass sweeps; growth moves its end), "batch_size", "growth_rule": {"threshold", "step"},
     "window", "max_attempts", "state": created|running|failed|done, "paused": bool, "pass": n,
     "batch_seq": the next batch number never used (numbers are unique across passes),
     "current": {"pass", "range", "first_batch", "total", "claimed", "ids_done", "started_at",
                 "finished_at"},
     "batches": {"total", "done", "failed"}, "in_flight": batches queued or running,
     "players_found", "max_id_found", "growth": [{"pass", "from", "to", "at"}], "passes": [summaries],
     "owner": {"user_id", "name"}, "created_at"}

``campaign_batches``: one document per batch, ``_id`` ``"<campaign_id>:<n>"``, so a batch number
can only ever be created once (a second insert is a duplicate key)::

    {"_id", "campaign", "pass", "n", "index" (within the pass), "start", "end", "state":
     queued|done|failed, "job_id", "attempts" (deliveries of earlier jobs), "found", "max_id_found",
     "created_at", "done_at"}
"""

from pymongo import ASCENDING

from object_challenge.campaigns import records

CAMPAIGNS = "campaigns"
BATCHES = "campaign_batches"


def campaigns(db):
    return db[CAMPAIGNS]


def batches(db):
    return db[BATCHES]


def batch_id(campaign_id, n):
    return f"{campaign_id}:{int(n)}"


def ensure_indexes(db):
    campaigns(db).create_index([("name", ASCENDING)], unique=True, name="campaign_name")
    batches(db).create_index(
        [("campaign", ASCENDING), ("pass", ASCENDING), ("state", ASCENDING)], name="campaign_pass_state"
    )
    records.ensure_indexes(db)
