"""The player API stand-in: deterministic players, the null rule, its rate limit, grow/advance, faults."""

import subprocess
import sys
import time

import requests

from object_challenge.campaigns import playerapi
from object_challenge.campaigns.playerapi import StandIn, create_app, is_player


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def info(client, ids, key="k"):
    return client.get(
        "/account/info/", query_string={"application_id": key, "account_id": ",".join(map(str, ids))}
    ).get_json()


def test_same_answers_from_two_separate_stand_ins():
    ids = list(range(1, 101))
    first = info(create_app(rps=0).test_client(), ids)
    second = info(create_app(rps=0).test_client(), ids)
    assert first["status"] == "ok" and first == second


def test_answers_follow_the_documented_rules():
    ids = list(range(990, 1090))
    data = info(create_app(rps=0, day=3).test_client(), ids)["data"]
    assert data == {str(i): playerapi.player_record(i, 3) if is_player(i, 1_200_000) else None for i in ids}


def test_about_one_id_in_ten_is_null_by_the_hash_rule():
    nulls = [i for i in range(1, 20_001) if not is_player(i, 1_200_000)]
    assert 1_600 < len(nulls) < 2_400
    assert all(playerapi._hash("exists", i) % 10 == 0 for i in nulls)


def test_ids_outside_the_population_are_null():
    data = info(create_app(rps=0, max_id=500).test_client(), [0, 499, 500, 501, 10_000])["data"]
    assert data["0"] is None and data["501"] is None and data["10000"] is None


def test_more_than_100_ids_is_an_error_like_the_real_api():
    body = info(create_app(rps=0).test_client(), range(1, 102))
    assert body["status"] == "error" and body["error"]["message"] == "ACCOUNT_ID_LIST_LIMIT_EXCEEDED"


def test_a_key_over_its_rate_is_refused_and_counted():
    clock = FakeClock()
    state = StandIn(rps=5, burst=5, clock=clock)
    client = create_app(state).test_client()
    answers = [info(client, [1])["status"] for _ in range(6)]
    refused = info(client, [1])
    assert answers == ["ok"] * 5 + ["error"]
    assert refused["error"] == {"code": 407, "message": "REQUEST_LIMIT_EXCEEDED"}
    assert state.snapshot()["refusals"] == 2


def test_the_bucket_refills_at_the_rate_and_keys_are_separate():
    clock = FakeClock()
    state = StandIn(rps=5, burst=1, clock=clock)
    client = create_app(state).test_client()
    assert info(client, [1])["status"] == "ok"
    assert info(client, [1])["status"] == "error"
    assert info(client, [1], key="other")["status"] == "ok"
    clock.now += 0.2
    assert info(client, [1])["status"] == "ok"


def test_grow_adds_players_above_the_old_maximum():
    client = create_app(rps=0, max_id=1000).test_client()
    new_id = next(i for i in range(1001, 2000) if is_player(i, 10**9))
    assert info(client, [new_id])["data"][str(new_id)] is None
    assert client.post("/_admin/grow", json={"by": 1000}).get_json() == {"max_id": 2000}
    assert info(client, [new_id])["data"][str(new_id)]["account_id"] == new_id


def test_advance_some_players_gain_battles_none_loses():
    client = create_app(rps=0).test_client()
    ids = list(range(1, 101))
    before = info(client, ids)["data"]
    assert client.post("/_admin/advance", json={"days": 2}).get_json() == {"day": 2}
    after = info(client, ids)["data"]
    gains = [
        after[k]["statistics"]["all"]["battles"] - v["statistics"]["all"]["battles"]
        for k, v in before.items()
        if v is not None
    ]
    assert min(gains) >= 0 and sum(1 for g in gains if g > 0) > 10


def test_admin_routes_reject_bad_bodies():
    client = create_app(rps=0).test_client()
    assert client.post("/_admin/grow", json={"by": -1}).status_code == 400
    assert client.post("/_admin/advance", json={"days": "2"}).status_code == 400
    assert client.post("/_admin/faults", json={"fail_ratio": 2}).status_code == 400


def test_injected_failures_are_evenly_spread_and_counted():
    state = StandIn(rps=0)
    client = create_app(state).test_client()
    client.post("/_admin/faults", json={"fail_ratio": 0.5})
    answers = [client.get("/account/info/?application_id=k&account_id=1") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 503, 200, 503]
    assert answers[1].get_json()["error"]["message"] == "SOURCE_NOT_AVAILABLE"
    assert state.snapshot()["failures"] == 2


def test_latency_switch_delays_answers(standin):
    requests.post(f"{standin.url}/_admin/faults", json={"latency_ms": 200}).raise_for_status()
    started = time.monotonic()
    requests.get(f"{standin.url}/account/info/", params={"application_id": "k", "account_id": "1"})
    assert time.monotonic() - started >= 0.2


def test_stats_count_calls_and_reset(standin):
    for _ in range(3):
        requests.get(f"{standin.url}/account/info/", params={"application_id": "k", "account_id": "1,2"})
    stats = requests.get(f"{standin.url}/_admin/stats").json()
    assert (stats["calls"], stats["ids"], stats["by_key"]["k"]["calls"]) == (3, 6, 3)
    assert requests.post(f"{standin.url}/_admin/stats/reset").json()["calls"] == 0


def test_runs_as_a_module_on_a_port(tmp_path):
    from object_challenge.dev.devstores import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "object_challenge.campaigns.playerapi", "--port", str(port), "--max-id", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process, what="player API stand-in")
        body = requests.get(
            f"http://127.0.0.1:{port}/account/info/", params={"application_id": "k", "account_id": "1,51"}
        ).json()
        assert body["data"]["51"] is None and body["data"]["1"]["account_id"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
