"""Ingest: one bulk insert per batch, exactly one record per (campaign, pass, player), diff_battles."""

import threading

from object_challenge.campaigns import records
from object_challenge.campaigns.ingest import ingest_batch
from object_challenge.campaigns.playerapi import is_player, player_record


def answers(start, end, day=0, max_id=1_200_000):
    return {i: player_record(i, day) if is_player(i, max_id) else None for i in range(start, end + 1)}


def test_a_batch_delivered_twice_creates_each_record_once(mongo_db):
    batch = answers(1, 100)
    first = ingest_batch(mongo_db, "c1", 1, batch)
    stored = list(records.pass_records(mongo_db, "c1", 1))
    again = ingest_batch(mongo_db, "c1", 1, batch)
    found = sum(1 for v in batch.values() if v is not None)
    assert (first.found, first.inserted, again.inserted, again.duplicates) == (found, found, 0, found)
    assert list(records.pass_records(mongo_db, "c1", 1)) == stored


def test_a_later_delivery_with_other_values_leaves_the_first_records(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    stored = list(records.pass_records(mongo_db, "c1", 1))
    late = ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=4))
    assert (late.inserted, list(records.pass_records(mongo_db, "c1", 1))) == (0, stored)


def test_a_partly_ingested_batch_gets_only_its_missing_records(mongo_db):
    batch = answers(1, 100)
    ingest_batch(mongo_db, "c1", 1, dict(list(batch.items())[:40]))
    rest = ingest_batch(mongo_db, "c1", 1, batch)
    first_part = sum(1 for v in list(batch.values())[:40] if v is not None)
    assert (rest.duplicates, rest.inserted + rest.duplicates) == (first_part, rest.found)
    assert records.count_records(mongo_db, "c1", 1) == rest.found


def test_null_answers_make_no_record_and_max_id_is_the_highest_found(mongo_db):
    batch = answers(1, 100)
    result = ingest_batch(mongo_db, "c1", 1, batch)
    assert result.max_id_found == max(i for i, v in batch.items() if v is not None)
    assert ingest_batch(mongo_db, "c1", 1, {5: None, 6: None}).found == 0


def test_diff_battles_is_null_first_then_the_battles_gained(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    ingest_batch(mongo_db, "c1", 2, answers(1, 100, day=3))
    player = next(i for i in range(1, 101) if is_player(i, 1_200_000))
    passes = records.player_passes(mongo_db, "c1", player)
    assert [p["pass"] for p in passes] == [1, 2]
    assert passes[0]["diff_battles"] is None
    assert passes[1]["diff_battles"] == passes[1]["battles"] - passes[0]["battles"] >= 0


def test_some_players_gain_battles_between_passes(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    ingest_batch(mongo_db, "c1", 2, answers(1, 100, day=3))
    diffs = [r["diff_battles"] for r in records.pass_records(mongo_db, "c1", 2)]
    assert min(diffs) >= 0 and any(d > 0 for d in diffs)


def test_a_player_missing_from_the_previous_pass_is_compared_with_the_one_before(mongo_db):
    record = player_record(1, 0)
    ingest_batch(mongo_db, "c1", 1, {1: record})
    ingest_batch(mongo_db, "c1", 2, {1: None})
    ingest_batch(mongo_db, "c1", 3, {1: player_record(1, 5)})
    third = records.player_passes(mongo_db, "c1", 1)[-1]
    assert third["pass"] == 3 and third["diff_battles"] == third["battles"] - record["statistics"]["all"]["battles"]


def test_a_player_first_seen_after_growth_has_no_diff(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 50, max_id=50))
    ingest_batch(mongo_db, "c1", 2, answers(51, 100))
    new = next(i for i in range(51, 101) if is_player(i, 100))
    assert records.player_passes(mongo_db, "c1", new)[0]["diff_battles"] is None


def test_redelivering_an_old_pass_after_the_next_one_changes_nothing(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    ingest_batch(mongo_db, "c1", 2, answers(1, 100, day=2))
    before = list(records.pass_records(mongo_db, "c1", 2))
    late = ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    assert late.inserted == 0
    assert list(records.pass_records(mongo_db, "c1", 2)) == before


def test_campaigns_are_kept_apart(mongo_db):
    ingest_batch(mongo_db, "c1", 1, answers(1, 100))
    ingest_batch(mongo_db, "c2", 1, answers(1, 10))
    assert records.count_records(mongo_db, "c2", 1) == sum(1 for i in range(1, 11) if is_player(i, 1_200_000))


def test_concurrent_deliveries_of_one_batch_make_one_record_each(mongo_db):
    batch = answers(1, 100)
    threads = [threading.Thread(target=ingest_batch, args=(mongo_db, "c1", 1, batch)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert records.count_records(mongo_db, "c1", 1) == sum(1 for v in batch.values() if v is not None)


def test_the_unique_key_is_the_id_and_reads_have_their_indexes(mongo_db):
    ingest_batch(mongo_db, "c1", 2, answers(1, 10))
    doc = records.collection(mongo_db).find_one({"campaign": "c1", "pass": 2})
    assert doc["_id"] == records.record_id("c1", 2, doc["player_id"])
    indexes = records.collection(mongo_db).index_information()
    assert "campaign_pass_player_id" in indexes and "campaign_player_pass" in indexes


def test_each_players_latest_entry_only_moves_forward(mongo_db):
    from object_challenge.campaigns import latest

    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))
    ingest_batch(mongo_db, "c1", 2, answers(1, 100, day=2))
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=0))  # a late delivery of the old pass
    seen = latest.entries(latest.read(mongo_db, "c1", range(1, 101)))
    assert seen == {r["player_id"]: (2, r["battles"]) for r in records.pass_records(mongo_db, "c1", 2)}


def test_records_inserted_by_a_delivery_that_died_before_its_latest_write_still_give_the_next_diffs(mongo_db):
    from object_challenge.campaigns.ingest import build_documents
    from object_challenge.core.inserts import insert_new

    first = answers(1, 100, day=0)
    insert_new(records.collection(mongo_db), build_documents("c1", 1, first, {}))  # then the process died
    ingest_batch(mongo_db, "c1", 1, answers(1, 100, day=9))  # the batch runs again: every record a duplicate
    ingest_batch(mongo_db, "c1", 2, answers(1, 100, day=10))
    for one, two in zip(records.pass_records(mongo_db, "c1", 1), records.pass_records(mongo_db, "c1", 2), strict=True):
        assert two["diff_battles"] == two["battles"] - one["battles"]


def test_concurrent_writes_to_one_block_keep_every_players_entry(mongo_db):
    from object_challenge.campaigns import latest

    halves = [{i: 10 * i for i in range(s, s + 50)} for s in (100, 150)]
    stale = latest.read(mongo_db, "c1", range(100, 200))  # both start from the same (empty) read
    threads = [threading.Thread(target=latest.advance, args=(mongo_db, "c1", 1, h, stale)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert latest.entries(latest.read(mongo_db, "c1", range(100, 200))) == {i: (1, 10 * i) for i in range(100, 200)}


def test_a_block_written_as_an_object_is_read_and_rewritten_as_one_string(mongo_db):
    from object_challenge.campaigns import latest

    # the layout before 2026-12-06 (afternoon): {"players": {"<id>": [pass, battles]}}, written by $set paths
    first = answers(1, 99, day=0)
    ingest_batch(mongo_db, "c1", 1, first)
    block = latest.collection(mongo_db).find_one({"_id": "c1:0"})
    assert isinstance(block["players"], str)
    old = {str(i): [1, r["statistics"]["all"]["battles"]] for i, r in first.items() if r is not None}
    latest.collection(mongo_db).update_one({"_id": "c1:0"}, {"$set": {"players": old}})
    second = ingest_batch(mongo_db, "c1", 2, answers(1, 99, day=3))
    assert second.inserted == len(old)
    for one, two in zip(records.pass_records(mongo_db, "c1", 1), records.pass_records(mongo_db, "c1", 2), strict=True):
        assert two["diff_battles"] is not None and two["diff_battles"] == two["battles"] - one["battles"]
    block = latest.collection(mongo_db).find_one({"_id": "c1:0"})
    assert isinstance(block["players"], str) and {int(k) for k in latest.entries({"b": block})} == set(map(int, old))
    assert {p for p, _ in latest.entries({"b": block}).values()} == {2}
