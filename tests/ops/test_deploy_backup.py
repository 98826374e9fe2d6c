"""manage.py backup / restore: a round trip gives back the same documents and the same answers."""

import gzip
import json
import os

import pytest
from bson import json_util
from helpers import FlaskTransport, auth, forget_connections

USER1, USER2, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")
JOB = {"job_title": "encode", "tasks": [{"module": "echo", "data": {"n": 1}}]}


def _fresh_names(config, tag):
    """Database names no other test uses, for the restore target."""
    suffix = f"{os.getpid()}_{tag}_{id(config)}"
    return {
        "MONGO_URI": config.MONGO_URI.rsplit("/", 1)[0] + f"/oc_restore_{suffix}",
        "MONGO_JOB_DB": f"oc_restore_jobs_{suffix}",
        "MONGO_DATA_DB": f"oc_restore_data_{suffix}",
    }


def _make_app(stores, **overrides):
    from object_challenge.app import create_app
    from object_challenge.core.config import load

    environ = {"APP_ENV": "testing", "REDIS_URL": stores.redis_url, **overrides}
    forget_connections()
    return create_app(load("testing", environ))


def _documents(app):
    """{db role: {collection: [documents sorted by _id]}} as canonical Extended JSON."""
    from object_challenge.ops.backup import _collections, app_databases

    with app.app_context():
        out = {}
        for role, database in app_databases().items():
            out[role] = {
                name: [
                    json_util.dumps(d, json_options=json_util.CANONICAL_JSON_OPTIONS)
                    for d in database[name].find({}, sort=[("_id", 1)])
                ]
                for name in _collections(database)
            }
        return out


def _answers(client, state):
    """What clients see: the same requests against either app."""
    out = {
        "buckets_a": client.get("/newapi/buckets", headers=USER1).get_json(),
        "buckets_b": client.get("/newapi/buckets", headers=USER2).get_json(),
        "whoami": client.get("/newapi/whoami", headers=USER1).get_json()["name"],
        "queue": client.get("/newapi/queue", headers=WORKER).get_json(),
        "data": client.get("/newapi/data/encoder/settings", headers=WORKER).get_json(),
        "jobs": {job_id: client.get(f"/newapi/jobs/{job_id}", headers=ADMIN).get_json() for job_id in state["jobs"]},
    }
    if state.get("puzzle"):
        out["puzzle"] = client.get(f"/newapi/puzzle/{state['puzzle']}/", headers=USER1).get_json()
    return out


def _make_state(app, client):
    """Buckets, jobs in three states, module data and (when the publish service is there) a puzzle."""
    for token, name in (("token_1", "arvan-backup"), ("token_1", "plain-bucket"), ("token_2", "pushe-b")):
        assert client.post("/bucket", json={"bucket": name}, headers=auth(token)).status_code == 201
    jobs = []
    for title in ("first", "second", "third"):
        r = client.post("/newapi/queue", json={**JOB, "job_title": title}, headers=USER1)
        assert r.status_code == 201, r.get_json()
        jobs.append(r.get_json()["job_id"])
    leased = client.get("/newapi/queue/poll", query_string={"worker_id": "w1"}, headers=WORKER)
    assert leased.status_code == 200, leased.get_json()
    done = client.patch(
        f"/newapi/jobs/{leased.get_json()['job_id']}/completed",
        query_string={"worker_id": "w1"},
        json={"result": {"ok": True}},
        headers=WORKER,
    )
    assert done.status_code in (200, 204), done.get_json()
    client.get("/newapi/queue/poll", query_string={"worker_id": "w2"}, headers=WORKER)  # one running
    r = client.post("/newapi/data/encoder/settings", json={"preset": "slow", "crf": 18}, headers=WORKER)
    assert r.status_code in (200, 201), r.get_json()
    state = {"jobs": jobs}
    with app.app_context():  # the scheduler's recorder: job records in MongoDB (the finished one leaves Redis)
        from object_challenge.jobs.service import jobs as job_service

        job_service().record()
    if "publish" in app.config["SERVICE_NAMES"]:
        from object_challenge.publish import artist

        r = client.post(
            "/newapi/puzzle/", headers=ADMIN, json={"rows": 2, "cols": 2, "table_width": 500, "table_height": 400}
        )
        if r.status_code == 202:
            with app.app_context():
                artist.create_pieces(r.get_json()["puzzle_id"], seed=3)
            state["puzzle"] = r.get_json()["puzzle_id"]
    return state


@pytest.fixture
def restored(app, client, runner, stores, tmp_path, monkeypatch, config):
    """(original answers, original docs, restore result, app2) after backup -> restore into new dbs."""
    state = _make_state(app, client)
    before = _answers(client, state)
    docs = _documents(app)
    out = tmp_path / "backup.jsonl.gz"
    result = runner.invoke(args=["backup", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output

    app.extensions["redis"].flushdb()  # a new deployment: empty Redis too
    names = _fresh_names(config, "rt")
    app2 = _make_app(stores, **names)
    from object_challenge.buckets import service

    monkeypatch.setattr(service._session, "get_adapter", lambda url: FlaskTransport(app2))
    restore = app2.test_cli_runner().invoke(args=["restore", str(out), "--no-progress"])
    yield {
        "state": state,
        "before": before,
        "docs": docs,
        "restore": restore,
        "app2": app2,
        "file": out,
        "names": names,
    }
    with app2.app_context():
        from object_challenge.core.extensions import db

        client_ = db.get_db().client
        for name in (names["MONGO_URI"].rsplit("/", 1)[1], names["MONGO_JOB_DB"], names["MONGO_DATA_DB"]):
            client_.drop_database(name)
    # the app fixture's teardown drops its own databases through the connection left here


def test_backup_file_is_extended_json_lines_with_every_collection(restored):
    with gzip.open(restored["file"], "rt") as handle:
        lines = [json.loads(line) for line in handle]
    header, footer = lines[0], lines[-1]
    assert header["format"] == "object_challenge-backup" and footer["end"] is True
    names = {(c["db"], c["name"]) for c in header["collections"]}
    for role, collections in restored["docs"].items():
        for name, documents in collections.items():
            if documents:
                assert (role, name) in names
    assert {
        ("main", "users"),
        ("main", "prefixes"),
        ("main", "user_prefixes"),
        ("main", "buckets"),
        ("main", "counters"),
    } <= names
    assert any(role == "jobs" for role, _ in names) and any(role == "data" for role, _ in names)
    users = [line["d"] for line in lines if line.get("c") == ["main", "users"]]
    assert all("token_hash" in u for u in users)
    assert any(line.get("r", "").startswith("oc:jobs:") for line in lines)  # queue order, leases
    assert not any(line.get("r", "").startswith(("oc:gw:", "oc:pub:scripts")) for line in lines)  # derived


def test_backup_leaves_ephemeral_keys_out(app, client, runner, tmp_path, redis):
    """Worker heartbeats, piece locks, move tokens, rates and bans would come back stale."""
    _make_state(app, client)
    assert client.post("/newapi/workers/w9", json={"status": "idle"}, headers=WORKER).status_code in (200, 201, 204)
    redis.set("oc:pub:puzzle:7:lock:1", "5|tab", px=5000)
    redis.set("oc:pub:puzzle:7:ban:5", "1", px=5000)
    assert redis.exists("oc:jobs:workers")
    out = tmp_path / "ephemeral.jsonl"
    result = runner.invoke(args=["backup", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = [json.loads(line).get("r", "") for line in out.read_text().splitlines()]
    assert any(k.startswith("oc:jobs:queue") for k in saved)  # the hot state stays in
    left_in = [k for k in saved if k.startswith(("oc:jobs:workers", "oc:jobs:worker:", "oc:ops:")) or ":lock:" in k]
    assert not left_in and not any(":ban:" in k for k in saved)
    total = int(result.output.split(": ", 1)[1].split(" items", 1)[0])  # the progress bar's count
    documents = sum(1 for line in out.read_text().splitlines() if '"c":' in line)
    keys = sum(1 for k in saved if k)
    assert total == documents + keys and f"{documents} documents" in result.output


def test_restore_gives_back_the_same_documents(restored):
    assert restored["restore"].exit_code == 0, restored["restore"].output
    assert "restored" in restored["restore"].output
    assert _documents(restored["app2"]) == restored["docs"]


def test_restore_gives_back_the_same_answers(restored):
    assert restored["restore"].exit_code == 0, restored["restore"].output
    client2 = restored["app2"].test_client()
    assert _answers(client2, restored["state"]) == restored["before"]
    # the rules and the unique names came back too
    assert client2.post("/bucket", json={"bucket": "pushe-b"}, headers=USER2).status_code == 409
    assert client2.post("/bucket", json={"bucket": "pushe-new"}, headers=USER1).status_code == 403
    assert client2.post("/bucket", json={"bucket": "arvan-new"}, headers=USER1).status_code == 201
    # the queue goes on where it was: the next poll hands out the job still waiting
    polled = client2.get("/newapi/queue/poll", query_string={"worker_id": "w3"}, headers=WORKER)
    assert polled.status_code == 200 and polled.get_json()["job_id"] == restored["state"]["jobs"][2]


def test_restore_publishes_the_gateway_snapshot(restored):
    from object_challenge.core import keys

    redis = restored["app2"].extensions["redis"]
    assert redis.exists(keys.GW_VERSION)
    assert redis.hlen(keys.GW_TOKENS) == 5


def test_restore_refuses_a_database_that_holds_data(restored):
    again = restored["app2"].test_cli_runner().invoke(args=["restore", str(restored["file"]), "--no-progress"])
    assert again.exit_code == 1
    assert "refusing to restore into a database that holds data" in again.output
    assert "users" in again.output


def test_backup_never_overwrites(runner, tmp_path):
    out = tmp_path / "b.jsonl"
    out.write_text("keep me")
    result = runner.invoke(args=["backup", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "already exists" in result.output
    assert out.read_text() == "keep me"


def test_restore_refuses_a_truncated_file_before_writing(runner, app, tmp_path, stores, config):
    out = tmp_path / "b.jsonl"
    assert runner.invoke(args=["backup", "--out", str(out), "--no-progress"]).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-3]))
    app2 = _make_app(stores, **_fresh_names(config, "cut"))
    app2.extensions["redis"].flushdb()
    result = app2.test_cli_runner().invoke(args=["restore", str(cut), "--no-progress"])
    assert result.exit_code == 1 and "incomplete" in result.output
    from object_challenge.ops.backup import _distinct, app_databases

    with app2.app_context():
        assert all(not db.list_collection_names() for db in _distinct(app_databases()).values())


def test_restore_refuses_what_is_not_a_backup(runner, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": "world"}\n')
    result = runner.invoke(args=["restore", str(other), "--no-progress"])
    assert result.exit_code == 1 and "not an object_challenge backup" in result.output


def test_backup_without_snapshot_reads_still_completes(app, runner, tmp_path, monkeypatch):
    """A standalone MongoDB has no snapshot sessions: the dump is read collection by collection."""
    from pymongo.errors import OperationFailure
    from pymongo.mongo_client import MongoClient

    real = MongoClient.start_session

    def start_session(self, *args, **kwargs):
        if kwargs.get("snapshot"):
            raise OperationFailure("snapshot reads require a replica set", code=123)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MongoClient, "start_session", start_session)
    out = tmp_path / "plain.jsonl"
    result = runner.invoke(args=["backup", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "no snapshot reads" in result.output
    header = json.loads(out.read_text().splitlines()[0])
    assert header["snapshot"] is False
    assert json.loads(out.read_text().splitlines()[-1])["documents"] >= 11  # the fixtures at least
