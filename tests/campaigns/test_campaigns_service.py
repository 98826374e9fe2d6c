"""The campaigns service in-process: the HTTP contract, feeding, exactly-once ingest, growth, retries.

A test "worker" here polls the queue through the test client and runs the real ``players`` task
against a stand-in on a free port; the gateway-level tests (test_campaigns_gateway.py) use real
worker processes.
"""

from types import SimpleNamespace

import pytest
from helpers import auth

from object_challenge.campaigns import playerapi, records, tasks
from object_challenge.campaigns.source import PlayerSource

ADMIN, WORKER, USER = auth("token_admin"), auth("token_worker"), auth("token_1")


@pytest.fixture
def source(standin, redis):
    src = PlayerSource(standin.url, ["k1"], redis, rps=0)
    return src


@pytest.fixture
def worker(client, app_session, source, monkeypatch):
    """``worker(n)`` runs up to n jobs of queue ``campaigns`` with the real task; returns the ids run."""
    monkeypatch.setattr(tasks, "player_source", lambda: source)
    job_client = SimpleNamespace(url="http://app/newapi", session=app_session)

    def work(limit=10_000, complete=True):
        ran = []
        for _ in range(limit):
            answer = client.get("/newapi/queue/poll?queue=campaigns&worker_id=w1", headers=WORKER)
            if answer.status_code == 404:
                break
            job = answer.get_json()
            result = tasks.players(job["tasks"][0]["data"], {**job, "client": job_client})
            if complete:
                done = client.patch(
                    f"/newapi/jobs/{job['job_id']}/completed?worker_id=w1",
                    json={"failed": False, "result": [result]},
                    headers=WORKER,
                )
                assert done.status_code == 200, done.get_json()
            ran.append(job)
        return ran

    return work


def create(client, **overrides):
    body = {"name": "daily", "source": "players", "range": {"start": 1, "end": 2000}, "batch_size": 100, "window": 4}
    body.update(overrides)
    return client.post("/newapi/campaigns", json=body, headers=ADMIN)


def get(client, campaign_id):
    answer = client.get(f"/newapi/campaigns/{campaign_id}", headers=USER)
    assert answer.status_code == 200
    return answer.get_json()


def tick(app):
    from object_challenge.campaigns import service

    with app.app_context():
        service.tick()


def test_create_answers_201_and_refuses_duplicates_non_admins_and_bad_fields(client):
    answer = create(client)
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["name"] == "daily" and body["state"] == "created" and body["pass"] == 0
    assert body["range"] == {"start": 1, "end": 2000} and body["batches"]["total"] == 0
    assert body["growth"] == [] and body["growth_rule"] == {"threshold": 50_000, "step": 200_000}
    assert get(client, body["campaign_id"])["campaign_id"] == body["campaign_id"]
    assert create(client).get_json()["error"] == "campaign_exists"
    assert create(client).status_code == 409
    assert client.post("/newapi/campaigns", json={"name": "x"}, headers=USER).status_code == 403
    assert client.post("/newapi/campaigns", json={"name": "x"}, headers=WORKER).status_code == 403
    assert client.post("/newapi/campaigns", json={"name": "x"}).status_code == 401
    for bad, field in [
        ({"batch_size": 101}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"range": {"start": 10, "end": 5}}, "range.end"),
        ({"range": [1, 2]}, "range"),
        ({"source": "other"}, "source"),
        ({"name": ""}, "name"),
        ({"window": "3"}, "window"),
        ({"growth": {"threshold": -1}}, "growth.threshold"),
        ({"max_attempts": 0}, "max_attempts"),
    ]:
        answer = create(client, **{"name": "bad", **bad})
        assert answer.status_code == 422, bad
        assert answer.get_json()["field"] == field
        assert field in answer.get_json()["message"]
    assert client.post("/newapi/campaigns", data="[1]", headers=ADMIN).status_code == 400


def test_a_pass_covers_every_id_once_and_keeps_the_window_fed(app, client, worker):
    campaign = create(client).get_json()
    cid = campaign["campaign_id"]
    answer = client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    assert answer.status_code == 201
    assert answer.get_json() == {"pass": 1, "batches": 20}
    assert client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN).get_json()["error"] == "pass_running"
    progress = get(client, cid)
    assert progress["state"] == "running" and progress["batches"]["queued"] == 4  # the window, no more
    worker(1)
    assert get(client, cid)["batches"]["queued"] == 4  # one done, one more fed at once
    worker()
    progress = get(client, cid)
    assert progress["state"] == "done", progress
    assert progress["batches"] == {"total": 20, "queued": 0, "running": 0, "done": 20, "failed": 0}
    expected = sum(1 for i in range(1, 2001) if playerapi.is_player(i, 1_200_000))
    assert progress["players_found"] == expected
    with app.app_context():
        from object_challenge.core.extensions import mongo

        assert records.count_records(mongo.db, cid, 1) == expected
    assert progress["max_id_found"] == max(i for i in range(1, 2001) if playerapi.is_player(i, 1_200_000))
    assert progress["ids_done"] == 2000 and progress["eta_s"] == 0 and progress["ids_per_second"] > 0
    # 2000 - max_id_found < 50,000 (the default threshold): the next pass's range ends 200,000 further
    assert [(g["pass"], g["from"], g["to"]) for g in progress["growth"]] == [(1, 2000, 202_000)]
    assert progress["range"] == {"start": 1, "end": 202_000} and progress["pass_range"] == {"start": 1, "end": 2000}


def test_results_delivered_twice_are_ingested_once(app, client, worker, source):
    cid = create(client, range={"start": 1, "end": 300}, window=3).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    job = worker(1, complete=False)[0]
    data = job["tasks"][0]["data"]
    players = {str(k): v for k, v in source.fetch_range(data["start"], data["end"]).items()}
    again = client.post(
        f"/newapi/campaigns/{cid}/batches/{data['batch']}/results", json={"players": players}, headers=WORKER
    )
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    found = sum(1 for v in players.values() if v)
    assert get(client, cid)["players_found"] == found
    # wrong coverage is refused, naming the field
    bad = client.post(
        f"/newapi/campaigns/{cid}/batches/{data['batch'] + 1}/results", json={"players": {"1": None}}, headers=WORKER
    )
    assert bad.status_code == 422 and bad.get_json()["field"] == "players"
    assert (
        client.post(f"/newapi/campaigns/{cid}/batches/999/results", json={"players": {}}, headers=WORKER).status_code
        == 404
    )
    assert (
        client.post(
            f"/newapi/campaigns/{cid}/batches/{data['batch']}/results", json={"players": players}, headers=USER
        ).status_code
        == 403
    )


def test_pause_stops_feeding_and_unpause_resumes(app, client, worker):
    cid = create(client, range={"start": 1, "end": 1000}, window=2).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    answer = client.patch(f"/newapi/campaigns/{cid}", json={"paused": True}, headers=ADMIN)
    assert answer.status_code == 200 and answer.get_json()["state"] == "paused"
    worker()
    tick(app)
    progress = get(client, cid)
    assert progress["batches"]["done"] == 2 and progress["batches"]["queued"] == 0 and progress["state"] == "paused"
    assert client.patch(f"/newapi/campaigns/{cid}", json={"paused": "no"}, headers=ADMIN).status_code == 422
    client.patch(f"/newapi/campaigns/{cid}", json={"paused": False}, headers=ADMIN)
    worker()
    assert get(client, cid)["state"] == "done"


def test_growth_fires_only_when_the_highest_id_is_near_the_end_and_diffs_follow(app, client, worker, standin):
    # stand-in population ends at 3,000: a range 1..2,500 finds ids near its end (grows), then
    # 1..3,500 finds max 3,000 (>= threshold 400 below the end: 3,500 - 3,000 = 500, no growth)
    standin.state.max_id = 3000
    cid = create(client, range={"start": 1, "end": 2500}, growth={"threshold": 400, "step": 1000}).get_json()[
        "campaign_id"
    ]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    worker()
    progress = get(client, cid)
    assert progress["state"] == "done" and progress["range"] == {"start": 1, "end": 3500}
    assert [(g["pass"], g["from"], g["to"]) for g in progress["growth"]] == [(1, 2500, 3500)]
    standin.state.advance(3)
    assert client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN).get_json() == {"pass": 2, "batches": 35}
    worker()
    progress = get(client, cid)
    assert progress["state"] == "done" and progress["pass_range"] == {"start": 1, "end": 3500}
    assert progress["max_id_found"] <= 3000 and progress["range"]["end"] == 3500 and len(progress["growth"]) == 1
    first = next(i for i in range(1, 100) if playerapi.is_player(i, 3000))
    passes = client.get(f"/newapi/campaigns/{cid}/players/{first}", headers=USER).get_json()["passes"]
    assert [p["pass"] for p in passes] == [1, 2]
    assert (
        passes[0]["diff_battles"] is None and passes[1]["diff_battles"] == passes[1]["battles"] - passes[0]["battles"]
    )
    assert passes[1]["diff_battles"] >= 0
    high = next(i for i in range(2600, 3001) if playerapi.is_player(i, 3000))
    assert [
        p["pass"] for p in client.get(f"/newapi/campaigns/{cid}/players/{high}", headers=USER).get_json()["passes"]
    ] == [2]
    assert client.get(f"/newapi/campaigns/{cid}/players/3400", headers=USER).status_code == 404


def test_a_batch_whose_job_fails_is_retried_then_listed_and_retried_on_demand(app, client, worker):
    cid = create(client, range={"start": 1, "end": 100}, window=1, max_attempts=2).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)

    def fail_one():
        job = client.get("/newapi/queue/poll?queue=campaigns&worker_id=w1", headers=WORKER).get_json()
        client.patch(
            f"/newapi/jobs/{job['job_id']}/completed?worker_id=w1",
            json={"failed": True, "message": "boom"},
            headers=WORKER,
        )

    fail_one()
    tick(app)  # attempt 1 of 2 used: a new job for the same batch
    progress = get(client, cid)
    assert progress["batches"]["queued"] == 1 and progress["batches"]["failed"] == 0
    from helpers import wait_until

    wait_until(lambda: client.get("/newapi/queue?queue=campaigns", headers=WORKER).get_json()["entries"], 5)
    import time

    time.sleep(2.2)  # the retry's delay_s (ignored by a queue without delays)
    fail_one()
    tick(app)
    progress = get(client, cid)
    assert progress["state"] == "failed" and progress["batches"]["failed"] == 1
    assert [b["batch"] for b in progress["failed_batches"]] == [1]
    listed = client.get(f"/newapi/campaigns/{cid}/batches?state=failed", headers=USER).get_json()["batches"]
    assert listed[0]["attempts"] == 2 and "boom" in listed[0]["error"]
    assert client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN).status_code == 409
    retried = client.post(f"/newapi/campaigns/{cid}/batches/retry", headers=ADMIN).get_json()
    assert retried == {"retried": 1, "batches": [1]}
    worker()
    progress = get(client, cid)
    assert progress["state"] == "done" and progress["batches"]["done"] == 1 and progress["batches"]["failed"] == 0


def ingest_samples(client):
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").get_data(as_text=True)
    wanted = ("oc_campaign_ids_ingested_total", "oc_campaign_ingest_duration_seconds_count")
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name in wanted}


def test_ingested_ids_and_ingest_time_are_counted_once_per_batch(app, client, worker, source):
    cid = create(client, range={"start": 1, "end": 300}, window=3).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    before = ingest_samples(client)
    job = worker(1)[0]  # one batch of 100 ids, ingested
    middle = ingest_samples(client)
    assert middle["oc_campaign_ids_ingested_total"] - before["oc_campaign_ids_ingested_total"] == 100
    count = "oc_campaign_ingest_duration_seconds_count"
    assert middle[count] - before[count] == 1
    data = job["tasks"][0]["data"]
    players = {str(k): v for k, v in source.fetch_range(data["start"], data["end"]).items()}
    again = client.post(
        f"/newapi/campaigns/{cid}/batches/{data['batch']}/results", json={"players": players}, headers=WORKER
    )
    assert again.get_json()["duplicate"] is True
    assert ingest_samples(client) == middle  # a second delivery is not counted


def test_the_scheduler_looks_at_in_flight_jobs_at_most_once_per_check_interval(app, client, monkeypatch):
    from object_challenge.campaigns import service

    cid = create(client, name="throttled", range={"start": 1, "end": 300}, window=2).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    checked = []
    monkeypatch.setattr(service, "check_batches", lambda doc: checked.append(doc["_id"]))
    with app.app_context():
        service.tick(check_every_s=60)
        service.tick(check_every_s=60)  # within the interval: feeding only
        assert checked.count(cid) == 1
        service.tick()  # the default (tests, manual calls): every time
        assert checked.count(cid) == 2


def test_a_batch_of_100_ids_reads_and_writes_one_latest_block(app, client, worker):
    from object_challenge.campaigns import latest, service

    cid = create(client, name="aligned", range={"start": 1, "end": 300}, window=3).get_json()["campaign_id"]
    client.post(f"/newapi/campaigns/{cid}/passes", headers=ADMIN)
    worker()
    with app.app_context():
        blocks = list(latest.collection(service.db()).find({"campaign": cid}))
    # blocks counted from the campaign's first id: ids 1-100, 101-200, 201-300 (not 1-99, 100-199, ...)
    assert sorted(b["_id"] for b in blocks) == [f"{cid}:0", f"{cid}:1", f"{cid}:2"]
    assert all(b["v"] == 1 for b in blocks)  # each written once, by its batch's insert
    assert get(client, cid)["state"] == "done"
