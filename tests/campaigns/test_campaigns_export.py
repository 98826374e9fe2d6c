"""Export: a pass as valid Elasticsearch _bulk NDJSON, one action line and one document per record."""

import io
import json

from object_challenge.campaigns import export, records
from object_challenge.campaigns.ingest import ingest_batch
from object_challenge.campaigns.playerapi import is_player, player_record


def parse_bulk(text):
    """Parse a _bulk body as Elasticsearch does: newline-terminated pairs of action + source."""
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert len(lines) % 2 == 0
    pairs = [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]
    for action, source in pairs:
        assert list(action) == ["index"] and set(action["index"]) == {"_index", "_id"}
        assert isinstance(source, dict)
    return pairs


def stored_pass(db, passes=2, ids=300):
    for n in range(1, passes + 1):
        for start in range(1, ids + 1, 100):
            ingest_batch(
                db,
                "camp",
                n,
                {i: player_record(i, n) if is_player(i, 1_200_000) else None for i in range(start, start + 100)},
            )


def test_a_pass_exports_as_valid_bulk_ndjson_one_document_per_record(mongo_db):
    stored_pass(mongo_db)
    out = io.StringIO()
    written = export.export_pass(mongo_db, "camp", 2, out, export.index_name("Camp 1"))
    pairs = parse_bulk(out.getvalue())
    assert written == len(pairs) == records.count_records(mongo_db, "camp", 2)
    assert len({a["index"]["_id"] for a, _ in pairs}) == written
    assert {d["pass"] for _, d in pairs} == {2}
    assert all(isinstance(d["diff_battles"], int) for _, d in pairs)


def test_documents_carry_the_record_and_its_keys(mongo_db):
    stored_pass(mongo_db, passes=1, ids=100)
    out = io.StringIO()
    export.export_pass(mongo_db, "camp", 1, out, "oc-campaign-camp")
    action, doc = parse_bulk(out.getvalue())[0]
    assert action == {"index": {"_index": "oc-campaign-camp", "_id": "camp-1-1"}}
    assert doc["player_id"] == 1 and doc["record"] == player_record(1, 1) and doc["diff_battles"] is None
    assert isinstance(doc["ingested_at"], str)


def test_progress_is_reported_while_writing_and_at_the_end(mongo_db):
    stored_pass(mongo_db, passes=1, ids=300)
    seen = []
    written = export.export_pass(mongo_db, "camp", 1, io.StringIO(), "i", progress=seen.append, every=100)
    assert seen == [100, 200, written]


def test_an_empty_pass_writes_nothing(mongo_db):
    out = io.StringIO()
    assert export.export_pass(mongo_db, "camp", 9, out, "i") == 0 and out.getvalue() == ""


def test_index_names_are_legal_for_elasticsearch():
    assert export.index_name("Players EU/2024") == "oc-campaign-players-eu-2024"
    assert export.index_name("***") == "oc-campaign-unnamed"
