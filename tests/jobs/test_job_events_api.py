"""Job events through the Flask app with real stores: posting, ids, retries, limits,
reading, archiving to MongoDB (the gateway's live stream: test_job_events_gateway.py)."""

import json

import pytest
from helpers import auth

from object_challenge.jobs import events as job_events
from object_challenge.jobs import keys
from object_challenge.jobs.service import jobs

USER, USER2, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")
JOB = {"job_title": "events", "tasks": [{"module": "echo", "data": {}}]}


def running_job(client, worker="w1", queue="ev"):
    r = client.post(f"/newapi/queue?queue={queue}", json=JOB, headers=USER)
    assert r.status_code == 201
    r = client.get("/newapi/queue/poll", query_string={"queue": queue, "worker_id": worker}, headers=WORKER)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def post(client, job_id, events, attempt=1, worker="w1", headers=WORKER):
    return client.post(
        f"/newapi/jobs/{job_id}/events",
        query_string={"worker_id": worker} if worker else None,
        json={"attempt": attempt, "events": events},
        headers=headers,
    )


def read(client, job_id, headers=USER, **params):
    r = client.get(f"/newapi/jobs/{job_id}/events", query_string=params, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def complete(client, job_id, worker="w1"):
    r = client.patch(
        f"/newapi/jobs/{job_id}/completed", query_string={"worker_id": worker}, json={"failed": False}, headers=WORKER
    )
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def lines(n, start=0):
    return [{"type": "stdout", "data": f"line {i}", "seq": i} for i in range(start, start + n)]


def test_post_then_read_every_event_with_ids_in_string_order(client):
    job = running_job(client)
    r = post(client, job["job_id"], [*lines(3), {"type": "progress", "data": {"done": 0.5}, "seq": 3}])
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"accepted": 4, "duplicates": 0, "last_id": "001-000000003"}
    body = read(client, job["job_id"])
    assert [e["id"] for e in body["events"]] == [f"001-00000000{i}" for i in range(4)]
    assert [e["data"] for e in body["events"]] == ["line 0", "line 1", "line 2", {"done": 0.5}]
    first = body["events"][0]
    assert set(first) == {"id", "attempt", "type", "data", "at", "stream"} and first["attempt"] == 1
    assert first["stream"] == "stdout" and "stream" not in body["events"][3]  # progress: no stream
    assert body["next"] == "001-000000003" and body["state"] == "running" and body["done"] is False


def test_a_retried_post_stores_nothing_twice(client):
    job = running_job(client)
    assert post(client, job["job_id"], lines(5)).get_json()["accepted"] == 5
    again = post(client, job["job_id"], lines(5)).get_json()
    assert again == {"accepted": 0, "duplicates": 5, "last_id": "001-000000004"}
    overlapping = post(client, job["job_id"], lines(5, start=3)).get_json()
    assert overlapping["accepted"] == 3 and overlapping["duplicates"] == 2
    assert [e["data"] for e in read(client, job["job_id"])["events"]] == [f"line {i}" for i in range(8)]


def test_events_without_seq_take_the_next_number(client):
    job = running_job(client)
    post(client, job["job_id"], lines(2))
    r = post(client, job["job_id"], [{"type": "log", "data": "a"}, {"type": "stderr", "data": "b"}])
    assert r.get_json()["last_id"] == "001-000000003"
    assert [e["type"] for e in read(client, job["job_id"])["events"]] == ["stdout", "stdout", "log", "stderr"]


def test_paging_with_after_and_limit(client):
    job = running_job(client)
    post(client, job["job_id"], lines(25))
    seen, after = [], ""
    while True:
        body = read(client, job["job_id"], after=after, limit=10)
        seen += [e["data"] for e in body["events"]]
        if not body["events"]:
            break
        after = body["next"]
    assert seen == [f"line {i}" for i in range(25)]
    assert body["next"] == "001-000000024"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"after": "nope"}])
def test_bad_read_parameters_are_400(client, params):
    job = running_job(client)
    r = client.get(f"/newapi/jobs/{job['job_id']}/events", query_string=params, headers=USER)
    assert r.status_code == 400 and r.get_json()["error"] in ("bad_limit", "bad_after")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"events": []},
        {"attempt": "1", "events": []},
        {"attempt": 1, "events": {}},
        {"attempt": 1, "events": [{"type": "video", "data": 1}]},
        {"attempt": 1, "events": [{"data": 1}]},
        {"attempt": 1, "events": [{"type": "log", "seq": -1}]},
        {"attempt": 1, "events": [{"type": "log", "seq": 1.5}]},
        {"attempt": 1, "events": [{"type": "log"}] * 1001},
    ],
)
def test_malformed_posts_are_400(client, body):
    job = running_job(client)
    r = client.post(f"/newapi/jobs/{job['job_id']}/events?worker_id=w1", json=body, headers=WORKER)
    assert r.status_code == 400 and r.get_json()["error"] == "bad_events", r.get_json()


def test_nan_data_is_400(client):
    job = running_job(client)
    r = client.post(
        f"/newapi/jobs/{job['job_id']}/events?worker_id=w1",
        data='{"attempt": 1, "events": [{"type": "progress", "data": NaN}]}',
        headers={**WORKER, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.get_json()["index"] == 0


def test_only_the_lease_holder_of_this_attempt_posts(client):
    job = running_job(client, worker="w1")
    assert post(client, job["job_id"], lines(1), worker="w2").status_code == 409
    assert post(client, job["job_id"], lines(1), worker="w2").get_json()["error"] == "not_lease_holder"
    assert post(client, job["job_id"], lines(1), worker=None).get_json()["error"] == "not_lease_holder"
    wrong = post(client, job["job_id"], lines(1), attempt=2)
    assert wrong.status_code == 409 and wrong.get_json()["error"] == "attempt_mismatch"
    assert post(client, job["job_id"], lines(1), headers=USER).status_code == 403
    assert post(client, "no-such-job", lines(1)).status_code == 404


def test_posting_to_a_finished_job_is_409(client):
    job = running_job(client)
    complete(client, job["job_id"])
    r = post(client, job["job_id"], lines(1))
    assert r.status_code == 409 and r.get_json()["error"] == "job_not_running"


def test_a_cancel_requested_job_answers_job_cancelled(client, redis):
    job = running_job(client)
    redis.hset(keys.job(job["job_id"]), "cancel_requested", "1")  # what the queue's cancel sets
    r = post(client, job["job_id"], lines(1))
    assert r.status_code == 409 and r.get_json()["error"] == "job_cancelled"


def test_count_limit_is_413_and_the_job_shows_truncated(app, client):
    app.config["JOB_EVENTS_MAX"] = 5
    app.extensions.pop("oc_job_events", None)
    job = running_job(client)
    assert post(client, job["job_id"], lines(3)).status_code == 200
    r = post(client, job["job_id"], lines(4, start=3))
    assert r.status_code == 413 and r.get_json()["error"] == "events_limit"
    assert r.get_json()["accepted"] == 2 and r.get_json()["last_id"] == "001-000000004"
    assert post(client, job["job_id"], lines(1, start=7)).status_code == 413  # and from then on
    assert post(client, job["job_id"], lines(3)).get_json()["duplicates"] == 3  # a retry of stored ones: 200
    assert len(read(client, job["job_id"])["events"]) == 5
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()
    assert got["events_truncated"] is True


def test_bytes_limit_is_413(app, client):
    app.config["JOB_EVENTS_MAX_BYTES"] = 2000
    app.extensions.pop("oc_job_events", None)
    job = running_job(client)
    r = post(client, job["job_id"], [{"type": "stdout", "data": "x" * 700, "seq": i} for i in range(3)])
    assert r.status_code == 413 and r.get_json()["accepted"] == 2
    fresh = running_job(client, queue="ev2")
    assert client.get(f"/newapi/jobs/{fresh['job_id']}", headers=USER).get_json()["events_truncated"] is False


def test_both_attempts_events_are_kept_each_tagged_with_its_attempt(client, redis):
    from test_jobs_api import expire_leases

    job = running_job(client, worker="w1")
    post(client, job["job_id"], lines(3), worker="w1")
    expire_leases(redis)
    again = running_job_again(client, worker="w2")
    assert again["job_id"] == job["job_id"] and again["attempt"] == 2
    late = post(client, job["job_id"], lines(1, start=3), worker="w1")  # the first worker, too late
    assert late.status_code == 409
    post(client, job["job_id"], lines(2), attempt=2, worker="w2")
    body = read(client, job["job_id"])
    assert [(e["attempt"], e["data"]) for e in body["events"]] == [
        (1, "line 0"),
        (1, "line 1"),
        (1, "line 2"),
        (2, "line 0"),
        (2, "line 1"),
    ]
    ids = [e["id"] for e in body["events"]]
    assert ids == sorted(ids) and len(set(ids)) == 5


def running_job_again(client, worker, queue="ev"):
    r = client.get("/newapi/queue/poll", query_string={"queue": queue, "worker_id": worker}, headers=WORKER)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_other_users_get_404_workers_and_admins_read(client):
    job = running_job(client)
    post(client, job["job_id"], lines(2))
    r = client.get(f"/newapi/jobs/{job['job_id']}/events", headers=USER2)
    assert r.status_code == 404 and r.get_json()["error"] == "job_not_found"
    assert client.get(f"/newapi/jobs/{job['job_id']}/events/stream", headers=USER2).status_code == 404
    assert client.get(f"/newapi/jobs/{job['job_id']}/events").status_code == 401
    assert len(read(client, job["job_id"], headers=WORKER)["events"]) == 2
    assert len(read(client, job["job_id"], headers=ADMIN)["events"]) == 2
    assert client.get("/newapi/jobs/nope/events", headers=ADMIN).status_code == 404


def test_final_job_events_move_to_mongodb_and_stay_readable(app, client, redis):
    job = running_job(client)
    post(client, job["job_id"], lines(150))
    complete(client, job["job_id"])
    before = read(client, job["job_id"], limit=1000)
    assert before["done"] is True and len(before["events"]) == 150  # from Redis still
    with app.app_context():
        jobs().record()  # the recorder writes the final record, then archives the events
        assert job_events.archive_due() is None
    assert not redis.exists(keys.events(job["job_id"]), keys.events_meta(job["job_id"]))
    assert not redis.sismember(keys.EVENTS_JOBS, job["job_id"])
    after = read(client, job["job_id"], limit=1000)
    assert after == before
    page = read(client, job["job_id"], after="001-000000099", limit=30)
    assert [e["data"] for e in page["events"]] == [f"line {i}" for i in range(100, 130)] and not page["done"]
    last = read(client, job["job_id"], after=page["next"], limit=1000)
    assert len(last["events"]) == 20 and last["done"] is True
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()
    assert got["events_truncated"] is False and got["events_count"] == 150


def test_archive_waits_until_the_record_is_final(app, client, redis):
    job = running_job(client)
    post(client, job["job_id"], lines(2))
    with app.app_context():
        assert job_events.archive(job["job_id"]) is None  # still running
        complete(client, job["job_id"])
        assert job_events.archive(job["job_id"]) is None  # final in Redis, not yet recorded in MongoDB
        jobs().record()  # the recorder writes the record, then archives the events
        assert job_events.archive(job["job_id"]) == 0  # idempotent
        assert job_events.events().collection.find_one({"_id": job["job_id"]})["count"] == 2
    assert len(read(client, job["job_id"])["events"]) == 2


def test_deleting_a_job_deletes_its_events(app, client, redis):
    job = running_job(client)
    post(client, job["job_id"], lines(2))
    complete(client, job["job_id"])
    with app.app_context():
        job_events.archive(job["job_id"])
    assert client.delete(f"/newapi/jobs/{job['job_id']}", headers=USER).status_code == 200
    with app.app_context():
        assert job_events.events().collection.find_one({"_id": job["job_id"]}) is None


def test_the_sse_answer_is_the_whole_stream_then_end(client):
    job = running_job(client)
    post(client, job["job_id"], lines(3))
    r = client.get(f"/newapi/jobs/{job['job_id']}/events/stream", headers=USER)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["X-Events-Done"] == "0" and r.headers["X-Events-Next"] == "001-000000002"
    messages = parse_sse(r.get_data(as_text=True))
    assert [m["id"] for m in messages] == ["001-000000000", "001-000000001", "001-000000002"]
    complete(client, job["job_id"])
    r = client.get(f"/newapi/jobs/{job['job_id']}/events/stream", headers={**USER, "Last-Event-ID": "001-000000001"})
    messages = parse_sse(r.get_data(as_text=True))
    assert [m.get("id") for m in messages] == ["001-000000002", None]
    assert messages[-1]["event"] == "end" and json.loads(messages[-1]["data"])["state"] == "completed"
    assert r.headers["X-Events-Done"] == "1" and r.headers["X-Job-State"] == "completed"


def parse_sse(text):
    messages = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            messages.append(fields)
    return messages


def test_event_keys_are_under_oc_jobs():
    built = [keys.events("j"), keys.events_meta("j"), keys.events_channel("j"), keys.EVENTS_JOBS]
    assert all(k.startswith("oc:jobs:") for k in built) and len(set(built)) == len(built)


def test_the_gateways_twin_keys_match():
    from lua_harness import LuaHarness

    harness = LuaHarness().start()
    try:
        built = harness.run("job_keys", {"job": "j-1"})
    finally:
        harness.stop()
    assert built == {"job": keys.job("j-1"), "channel": keys.events_channel("j-1")}


def test_a_second_archive_racing_the_first_does_not_overwrite_the_events(app, client, redis):
    job = running_job(client)
    post(client, job["job_id"], lines(3))
    with app.app_context():
        service = job_events.events()
        real_pipeline = service.redis.pipeline

        def first_archive_wins_meanwhile(*args, **kwargs):
            # the other archive moves the events between this one's checks and its read
            service.redis.pipeline = real_pipeline
            service.archive(job["job_id"])
            return real_pipeline(*args, **kwargs)

        complete(client, job["job_id"])
        jobs().record()  # the recorder writes the record, then archives the events
        assert service.collection.find_one({"_id": job["job_id"]})["count"] == 3
        # put the events back in Redis as if not archived yet, then race two archives
        service.collection.delete_one({"_id": job["job_id"]})
        for i in range(3):
            redis.xadd(keys.events(job["job_id"]), {"e": f'{{"id":"001-00000000{i}"}}'}, id=f"1-{i}")
        redis.hset(keys.events_meta(job["job_id"]), mapping={"count": 3, "last": "001-000000002"})
        service.redis.pipeline = first_archive_wins_meanwhile
        try:
            assert service.archive(job["job_id"]) == 0
        finally:
            service.redis.pipeline = real_pipeline
        assert service.collection.find_one({"_id": job["job_id"]})["count"] == 3
