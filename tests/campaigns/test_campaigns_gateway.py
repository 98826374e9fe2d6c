"""Campaigns through the gateway, on the `make run` stack: the stand-in on its own free port
(PLAYER_API_ADDR), the stack's campaigns worker (`local-campaigns-1`, queue campaigns, module
players) and, where a test needs them, more worker processes of its own.

Every count is checked against the stand-in's own rule (``playerapi.is_player``) and against
MongoDB directly: records per pass == players in the range, no id twice.
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from helpers import auth, wait_until
from pymongo import MongoClient

from object_challenge.campaigns import playerapi, records, store

ROOT = Path(__file__).resolve().parents[2]
USER, WORKER, ADMIN = auth("token_1"), auth("token_worker"), auth("token_admin")


def api(stack):
    return stack.url + "/newapi"


def standin(stack):
    return "http://" + stack.settings["PLAYER_API_ADDR"]


def admin(stack, route, body):
    answer = requests.post(standin(stack) + "/_admin/" + route, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stats(stack):
    return requests.get(standin(stack) + "/_admin/stats", timeout=30).json()


@pytest.fixture
def player_api(stack):
    """The stack's stand-in with its default rate, no faults and fresh counters (restored after)."""
    admin(stack, "faults", {"latency_ms": 0, "fail_ratio": 0})
    admin(stack, "rate", {"rps": 20})
    admin(stack, "stats/reset", {})
    yield stack
    admin(stack, "faults", {"latency_ms": 0, "fail_ratio": 0})
    admin(stack, "rate", {"rps": 20})
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": False}, headers=ADMIN, timeout=30)


@pytest.fixture
def mongo(stack):
    client = MongoClient(stack.env["MONGO_URI"])
    yield client.get_default_database()
    client.close()


@pytest.fixture
def spawn_worker(stack, tmp_path):
    processes = []

    def spawn(worker_id, **env):
        log = open(tmp_path / f"{worker_id}.log", "wb")
        argv = [sys.executable, "manage.py", "worker", "--queue", "campaigns", "--modules", "players"]
        process = subprocess.Popen(
            [*argv, "--worker-id", worker_id, "--url", api(stack), "--poll-interval", "0.2"],
            cwd=ROOT,
            env={**stack.env, **{k: str(v) for k, v in env.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = tmp_path / f"{worker_id}.log"
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        print(f"--- {process.args} ---\n{process.log.read_text(errors='replace')[-3000:]}")


def create(stack, start, end, **fields):
    name = fields.pop("name", None) or f"c-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "source": "players", "range": {"start": start, "end": end}, "batch_size": 100, **fields}
    answer = requests.post(api(stack) + "/campaigns", json=body, headers=ADMIN, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def start_pass(stack, campaign_id):
    answer = requests.post(f"{api(stack)}/campaigns/{campaign_id}/passes", headers=ADMIN, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def progress(stack, campaign_id):
    answer = requests.get(f"{api(stack)}/campaigns/{campaign_id}", headers=USER, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_done(stack, campaign_id, timeout=180):
    def done():
        body = progress(stack, campaign_id)
        return body if body["state"] in ("done", "failed") else None

    body = wait_until(done, timeout=timeout, interval=0.5, message="the pass to end")
    assert body["state"] == "done", body
    return body


def expected_players(start, end, max_id):
    return sum(1 for i in range(start, end + 1) if playerapi.is_player(i, max_id))


def assert_covered_once(mongo, campaign_id, pass_no, start, end, max_id):
    docs = list(records.collection(mongo).find({"campaign": campaign_id, "pass": pass_no}, {"player_id": 1}))
    ids = [d["player_id"] for d in docs]
    assert len(ids) == len(set(ids)), "a player recorded twice in one pass"
    assert set(ids) == {i for i in range(start, end + 1) if playerapi.is_player(i, max_id)}
    batches = list(store.batches(mongo).find({"campaign": campaign_id, "pass": pass_no}))
    covered = sorted(i for b in batches for i in range(b["start"], b["end"] + 1))
    assert covered == list(range(start, end + 1)), "every id in exactly one batch"
    assert all(b["state"] == "done" for b in batches)
    return len(ids)


def test_the_contract_errors_through_the_gateway(player_api):
    stack = player_api
    campaign = create(stack, 1, 100)
    again = requests.post(
        api(stack) + "/campaigns",
        json={"name": campaign["name"], "range": {"start": 1, "end": 5}},
        headers=ADMIN,
        timeout=30,
    )
    assert again.status_code == 409 and again.json()["error"] == "campaign_exists"
    body = {"name": "x-user", "range": {"start": 1, "end": 5}}
    assert requests.post(api(stack) + "/campaigns", json=body, headers=USER, timeout=30).status_code == 403
    bad = requests.post(api(stack) + "/campaigns", json={**body, "batch_size": 500}, headers=ADMIN, timeout=30)
    assert bad.status_code == 422 and bad.json()["field"] == "batch_size" and bad.json()["request_id"]
    assert requests.get(api(stack) + "/campaigns/nope", headers=USER, timeout=30).status_code == 404
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": True}, headers=ADMIN, timeout=30)
    start_pass(stack, campaign["campaign_id"])
    running = requests.post(f"{api(stack)}/campaigns/{campaign['campaign_id']}/passes", headers=ADMIN, timeout=30)
    assert running.status_code == 409 and running.json()["error"] == "pass_running"
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": False}, headers=ADMIN, timeout=30)
    wait_done(stack, campaign["campaign_id"])


def test_a_pass_covers_every_id_exactly_once_and_its_export_is_valid_bulk_ndjson(player_api, mongo, tmp_path):
    stack = player_api
    max_id = stats(stack)["max_id"]
    campaign = create(stack, 1, 1000, window=4)
    assert start_pass(stack, campaign["campaign_id"]) == {"pass": 1, "batches": 10}
    done = wait_done(stack, campaign["campaign_id"])
    expected = expected_players(1, 1000, max_id)
    assert done["players_found"] == expected and done["batches"]["done"] == 10 and done["batches"]["failed"] == 0
    assert assert_covered_once(mongo, campaign["campaign_id"], 1, 1, 1000, max_id) == expected
    assert done["ids_per_second"] > 0 and done["eta_s"] == 0
    player = next(i for i in range(1, 100) if playerapi.is_player(i, max_id))
    answer = requests.get(
        f"{api(stack)}/campaigns/{campaign['campaign_id']}/players/{player}", headers=USER, timeout=30
    )
    assert answer.status_code == 200
    assert answer.json()["passes"][0]["record"] == playerapi.player_record(player, stats(stack)["day"])

    out = tmp_path / "pass-1.ndjson"
    stack.manage("campaign", "export", campaign["name"], "--pass", "1", "--out", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * expected
    ids = set()
    for action, doc in zip(lines[::2], lines[1::2], strict=True):
        action, doc = json.loads(action), json.loads(doc)
        assert set(action) == {"index"} and action["index"]["_index"].startswith("oc-campaign-")
        assert doc["player_id"] not in ids and doc["pass"] == 1 and doc["record"]["account_id"] == doc["player_id"]
        assert action["index"]["_id"] == f"{campaign['campaign_id']}-1-{doc['player_id']}"
        ids.add(doc["player_id"])
    assert len(ids) == expected


def test_killing_a_worker_mid_batch_loses_nothing_and_duplicates_nothing(player_api, mongo, spawn_worker):
    stack = player_api
    max_id = stats(stack)["max_id"]
    # only our worker takes batches until it is killed; each API call takes 1.5 s
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": True}, headers=ADMIN, timeout=30)
    admin(stack, "faults", {"latency_ms": 1500, "fail_ratio": 0})
    victim = spawn_worker("campaigns-victim")
    campaign = create(stack, 1, 400, window=2)
    start_pass(stack, campaign["campaign_id"])

    def holding():
        answer = requests.get(api(stack) + "/workers/campaigns-victim", headers=WORKER, timeout=30)
        return answer.status_code == 200 and answer.json().get("jobs")

    wait_until(holding, timeout=60, interval=0.1, message="the victim to hold a batch")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    admin(stack, "faults", {"latency_ms": 0, "fail_ratio": 0})
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": False}, headers=ADMIN, timeout=30)
    done = wait_done(stack, campaign["campaign_id"])
    expected = expected_players(1, 400, max_id)
    assert done["players_found"] == expected and done["batches"]["done"] == 4
    assert assert_covered_once(mongo, campaign["campaign_id"], 1, 1, 400, max_id) == expected
    # the batch the victim held ran again (attempt 2 of its job) and was counted once
    attempts = []
    for batch in store.batches(mongo).find({"campaign": campaign["campaign_id"]}):
        job = requests.get(f"{api(stack)}/jobs/{batch['job_id']}", headers=ADMIN, timeout=30).json()
        attempts.append(job["attempt"])
    assert max(attempts) >= 2


def test_two_workers_sharing_one_api_key_stay_under_its_rate(player_api, mongo, spawn_worker):
    """Two workers, one key, the API allowing 2 calls/s: batches of 10 ids ingest fast, so each
    worker alone would call faster than that; together they stay under it (the shared bucket)."""
    stack = player_api
    max_id = stats(stack)["max_id"]
    requests.patch(api(stack) + "/workers/local-campaigns-1", json={"disabled": True}, headers=ADMIN, timeout=30)
    for name in ("campaigns-rate-1", "campaigns-rate-2"):
        spawn_worker(name, PLAYER_SOURCE_RPS=2)
    admin(stack, "rate", {"rps": 2})
    admin(stack, "stats/reset", {})
    campaign = create(stack, 1, 300, batch_size=10, window=6)  # 30 calls at 2/s: 15 s
    start_pass(stack, campaign["campaign_id"])
    done = wait_done(stack, campaign["campaign_id"])
    counters = stats(stack)
    key = stack.env.get("PLAYER_API_KEYS", "oc-dev-key")
    assert list(counters["by_key"]) == [key]
    assert counters["refusals"] <= 3, counters  # a few backed off are fine; none lost:
    assert counters["calls"] - counters["refusals"] - counters["failures"] == 30
    expected = expected_players(1, 300, max_id)
    assert done["players_found"] == expected
    assert assert_covered_once(mongo, campaign["campaign_id"], 1, 1, 300, max_id) == expected
    workers = set()
    for batch in store.batches(mongo).find({"campaign": campaign["campaign_id"]}):
        workers.add(requests.get(f"{api(stack)}/jobs/{batch['job_id']}", headers=ADMIN, timeout=30).json()["worker_id"])
    assert workers == {"campaigns-rate-1", "campaigns-rate-2"}


def test_growth_fires_exactly_when_the_highest_id_is_within_the_threshold(player_api, mongo):
    stack = player_api
    max_id = stats(stack)["max_id"]
    # the range ends 300 past the population: the highest id found is ~300 below the end
    start, end = max_id - 199, max_id + 300
    campaign = create(stack, start, end, growth={"threshold": 200, "step": 1000}, window=5)
    cid = campaign["campaign_id"]
    start_pass(stack, cid)
    first = wait_done(stack, cid)
    top = max(i for i in range(start, max_id + 1) if playerapi.is_player(i, max_id))
    assert first["max_id_found"] == top and end - top >= 200
    assert first["growth"] == [] and first["range"]["end"] == end  # not within the threshold: no growth
    admin(stack, "grow", {"by": 300})  # the population now reaches the range's end
    admin(stack, "advance", {"days": 2})
    start_pass(stack, cid)
    second = wait_done(stack, cid)
    assert end - second["max_id_found"] < 200
    assert [(g["pass"], g["from"], g["to"]) for g in second["growth"]] == [(2, end, end + 1000)]
    assert second["range"] == {"start": start, "end": end + 1000} and second["pass_range"]["end"] == end
    assert assert_covered_once(mongo, cid, 2, start, end, max_id + 300) == second["players_found"]
    # differences: a player of both passes has diff_battles = battles gained; a new one has none
    old = next(i for i in range(start, max_id + 1) if playerapi.is_player(i, max_id))
    new = next(i for i in range(max_id + 1, end + 1) if playerapi.is_player(i, max_id + 300))
    passes = requests.get(f"{api(stack)}/campaigns/{cid}/players/{old}", headers=USER, timeout=30).json()["passes"]
    assert [p["pass"] for p in passes] == [1, 2] and passes[0]["diff_battles"] is None
    assert passes[1]["diff_battles"] == passes[1]["battles"] - passes[0]["battles"] >= 0
    passes = requests.get(f"{api(stack)}/campaigns/{cid}/players/{new}", headers=USER, timeout=30).json()["passes"]
    assert [p["pass"] for p in passes] == [2] and passes[0]["diff_battles"] is None
