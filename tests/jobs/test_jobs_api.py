"""The job queue's HTTP contract (issue 5), through the Flask app with real stores."""

import json
import threading

import pytest
from helpers import auth, wait_until
from mongoengine import disconnect_all

USER, USER2, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")
JOB = {"job_title": "encode", "tasks": [{"module": "echo", "data": {"n": 1}}]}


def enqueue(client, queue=None, title="encode", headers=USER, **extra):
    url = "/newapi/queue" + (f"?queue={queue}" if queue else "")
    r = client.post(url, json={**JOB, "job_title": title, **extra}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def poll(client, queue=None, worker="w1"):
    params = {k: v for k, v in (("queue", queue), ("worker_id", worker)) if v}
    return client.get("/newapi/queue/poll", query_string=params, headers=WORKER)


def expire_leases(redis):
    """Move every lease deadline into the past (no sleeping for JOB_LEASE_SECONDS)."""
    from object_challenge.jobs import keys

    for job_id in redis.zrange(keys.LEASES, 0, -1):
        redis.zadd(keys.LEASES, {job_id: 0})


# -- enqueue -------------------------------------------------------------------
def test_enqueue_returns_the_queued_job(client):
    r = client.post("/newapi/queue", json=JOB, headers=USER)
    assert r.status_code == 201
    job = r.get_json()
    assert job["job_id"] and job["added"] and job["state"] == "queued"
    assert job["job_title"] == "encode" and job["tasks"] == JOB["tasks"] and job["attempt"] == 0


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        "{}",
        '{"tasks": [{"module": "echo"}]}',
        '{"job_title": "", "tasks": [{"module": "echo"}]}',
        '{"job_title": "t"}',
        '{"job_title": "t", "tasks": []}',
        '{"job_title": "t", "tasks": {"module": "echo"}}',
        '{"job_title": "t", "tasks": [{"data": 1}]}',
        '{"job_title": "t", "tasks": ["echo"]}',
        '{"job_title": 5, "tasks": [{"module": "echo"}]}',
    ],
)
def test_enqueue_rejects_malformed_jobs_with_400_json(client, body):
    r = client.post("/newapi/queue", data=body, headers={**USER, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.get_json()["error"] and r.get_json()["message"]


def test_named_queues_are_isolated(client):
    a = enqueue(client, queue="alpha")
    b = enqueue(client, queue="beta")
    assert poll(client, queue="beta").get_json()["job_id"] == b["job_id"]
    assert poll(client, queue="beta").status_code == 404
    assert poll(client).status_code == 404  # the default queue is a queue of its own
    assert poll(client, queue="alpha").get_json()["job_id"] == a["job_id"]


# -- GET/DELETE/PATCH /queue ---------------------------------------------------------
def test_get_queue_lists_jobs_in_fifo_order_with_attributes(client):
    ids = [enqueue(client, title=f"j{i}")["job_id"] for i in range(3)]
    r = client.get("/newapi/queue", headers=WORKER)
    assert r.status_code == 200
    body = r.get_json()
    assert [j["job_id"] for j in body["queue"]] == ids
    assert body["entries"] == 3 and body["attributes"]["disabled"] is False


def test_get_queue_limit_cuts_the_list_but_not_the_count(client):
    ids = [enqueue(client, title=f"j{i}")["job_id"] for i in range(3)]
    body = client.get("/newapi/queue?limit=2", headers=WORKER).get_json()
    assert [j["job_id"] for j in body["queue"]] == ids[:2] and body["entries"] == 3


def test_delete_queue_clears_it_and_its_jobs(client):
    job = enqueue(client)
    other = enqueue(client, queue="other")
    r = client.delete("/newapi/queue", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["deleted"] == 1
    assert client.get("/newapi/queue", headers=WORKER).get_json()["entries"] == 0
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=ADMIN).status_code == 404
    assert client.get(f"/newapi/jobs/{other['job_id']}", headers=ADMIN).get_json()["state"] == "queued"


def test_disabled_queue_hands_nothing_out_and_jobs_stay_queued(client):
    job = enqueue(client)
    assert client.patch("/newapi/queue", json={"disabled": True}, headers=ADMIN).status_code == 200
    assert client.get("/newapi/queue", headers=WORKER).get_json()["attributes"]["disabled"] is True
    r = poll(client)
    assert r.status_code == 404 and r.get_json()["error"] == "queue_disabled"
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()["state"] == "queued"
    client.patch("/newapi/queue", json={"disabled": False}, headers=ADMIN)
    assert poll(client).get_json()["job_id"] == job["job_id"]


def test_patch_queue_rejects_a_non_boolean_disabled(client):
    assert client.patch("/newapi/queue", json={"disabled": "yes"}, headers=ADMIN).status_code == 400


# -- poll ----------------------------------------------------------------------------
def test_poll_leases_the_oldest_job(client, app):
    first = enqueue(client, title="first")
    enqueue(client, title="second")
    r = poll(client, worker="w1")
    assert r.status_code == 200
    job = r.get_json()
    assert job["job_id"] == first["job_id"] and job["state"] == "running"
    assert job["attempt"] == 1 and job["worker_id"] == "w1" and job["lease_expires_at"]
    assert job["lease_seconds"] == app.config["JOB_LEASE_SECONDS"]


def test_poll_on_an_empty_queue_is_404_json(client):
    r = poll(client)
    assert r.status_code == 404 and r.get_json()["error"] == "queue_empty"


def test_disabled_worker_gets_no_job(client):
    job = enqueue(client)
    assert client.patch("/newapi/workers/w1", json={"disabled": True}, headers=ADMIN).status_code == 200
    r = poll(client, worker="w1")
    assert r.status_code == 423 and r.get_json()["error"] == "worker_disabled"
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()["state"] == "queued"
    assert poll(client, worker="w2").get_json()["job_id"] == job["job_id"]


def test_poll_without_worker_id_is_claimed_by_the_first_heartbeat_naming_it(client):
    job = enqueue(client)
    leased = poll(client, worker=None).get_json()
    assert leased["job_id"] == job["job_id"] and leased["worker_id"] is None
    r = client.post("/newapi/workers/ref-1", json={"status": "in_progress", "job_id": job["job_id"]}, headers=WORKER)
    assert r.status_code == 200 and job["job_id"] in r.get_json()["leases"]
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()
    assert got["worker_id"] == "ref-1"
    assert any(e["event"] == "claimed" for e in got["history"])


def test_concurrent_polls_hand_each_job_out_exactly_once(app):
    ids = set()
    with app.test_client() as c:
        for i in range(20):
            ids.add(enqueue(c, title=f"j{i}")["job_id"])
    handed, errors = [], []

    def work(n):
        with app.test_client() as c:
            while True:
                r = poll(c, worker=f"w{n}")
                if r.status_code == 404:
                    return
                if r.status_code != 200:
                    errors.append(r.status_code)
                    return
                handed.append(r.get_json()["job_id"])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(handed) == sorted(ids)


# -- heartbeats and workers -------------------------------------------------------------
def test_heartbeat_extends_the_leases_the_worker_holds(client, redis):
    from object_challenge.jobs import keys

    job = enqueue(client)
    poll(client, worker="w1")
    before = redis.zscore(keys.LEASES, job["job_id"])
    wait_until(
        lambda: (
            client.post("/newapi/workers/w1", json={"status": "in_progress"}, headers=WORKER).get_json()["leases"]
            and redis.zscore(keys.LEASES, job["job_id"]) > before
        ),
        message="lease extended",
    )


def test_a_heartbeat_listing_its_jobs_does_not_keep_a_lease_it_never_knew_of(client, redis):
    """The answer to a poll is lost: the worker holds a lease it does not know of. Its
    heartbeats list what it runs, so that lease runs out and the job is requeued."""
    from object_challenge.jobs import keys

    job = enqueue(client)
    poll(client, worker="w1")  # the answer "never arrives"
    before = redis.zscore(keys.LEASES, job["job_id"])
    r = client.post("/newapi/workers/w1", json={"status": "idle", "jobs": []}, headers=WORKER)
    assert r.status_code == 200 and r.get_json()["leases"] == {}
    assert redis.zscore(keys.LEASES, job["job_id"]) == before  # not extended
    expire_leases(redis)
    again = poll(client, worker="w2").get_json()
    assert again["job_id"] == job["job_id"] and again["attempt"] == 2


def test_a_heartbeat_listing_a_job_extends_that_lease(client, redis):
    job = enqueue(client)
    poll(client, worker="w1")
    r = client.post("/newapi/workers/w1", json={"status": "in_progress", "jobs": [job["job_id"]]}, headers=WORKER)
    assert job["job_id"] in r.get_json()["leases"]


@pytest.mark.parametrize("jobs", ["j1", [1], ["x"] * 101, {"a": 1}])
def test_a_heartbeat_with_a_bad_jobs_list_is_400(client, jobs):
    r = client.post("/newapi/workers/w1", json={"jobs": jobs}, headers=WORKER)
    assert r.status_code == 400 and r.get_json()["error"] == "bad_heartbeat"


def test_heartbeat_naming_a_finished_job_changes_nothing(client):
    job = enqueue(client)
    poll(client, worker="w1")
    client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False, "info": {}}, headers=WORKER)
    r = client.post("/newapi/workers/w2", json={"status": "in_progress", "job_id": job["job_id"]}, headers=WORKER)
    assert r.status_code == 200 and r.get_json()["leases"] == {}
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()
    assert got["state"] == "completed" and got["worker_id"] == "w1"


def test_heartbeat_naming_a_job_leased_to_another_worker_does_not_take_it(client):
    job = enqueue(client)
    poll(client, worker="w1")
    r = client.post("/newapi/workers/w2", json={"job_id": job["job_id"]}, headers=WORKER)
    assert r.get_json()["leases"] == {}
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()["worker_id"] == "w1"


def test_workers_list_and_status_have_the_reference_shape(client):
    body = {"status": "idle", "hostname": "h", "version": "1.5.0"}
    assert client.post("/newapi/workers/w1", json=body, headers=WORKER).status_code == 200
    listed = client.get("/newapi/workers", headers=WORKER).get_json()
    assert listed == {"workers": ["w1"], "count": 1}
    status = client.get("/newapi/workers/w1", headers=WORKER).get_json()
    assert status["status"] == "idle" and status["hostname"] == "h"
    assert status["attributes"] == {"disabled": False}


def test_workers_expire_after_client_expiry_without_heartbeat(client, app):
    client.post("/newapi/workers/w1", json={"status": "idle"}, headers=WORKER)
    timeout = app.config["CLIENT_EXPIRY"] + 2
    wait_until(
        lambda: client.get("/newapi/workers", headers=WORKER).get_json()["count"] == 0,
        timeout=timeout,
        interval=0.1,
        message="worker expired",
    )
    assert client.get("/newapi/workers/w1", headers=WORKER).status_code == 404


def test_worker_need_not_be_registered_to_poll_and_complete(client):
    job = enqueue(client)
    assert poll(client, worker="never-seen").status_code == 200
    r = client.patch(
        f"/newapi/jobs/{job['job_id']}/completed?worker_id=never-seen",
        json={"failed": False, "info": None},
        headers=WORKER,
    )
    assert r.status_code == 200 and r.get_json()["state"] == "completed"


def test_delete_worker_removes_it_and_releases_its_jobs(client):
    job = enqueue(client)
    client.post("/newapi/workers/w1", json={"status": "idle"}, headers=WORKER)
    poll(client, worker="w1")
    r = client.delete("/newapi/workers/w1", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["released"] == [job["job_id"]]
    assert client.get("/newapi/workers/w1", headers=WORKER).status_code == 404
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()["state"] == "queued"
    assert client.delete("/newapi/workers/w1", headers=ADMIN).status_code == 404


def test_patch_worker_sets_disabled_for_admins_only(client):
    assert client.patch("/newapi/workers/w1", json={"disabled": True}, headers=WORKER).status_code == 403
    r = client.patch("/newapi/workers/w1", json={"disabled": True}, headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["attributes"]["disabled"] is True
    assert client.get("/newapi/workers/w1", headers=WORKER).get_json()["attributes"]["disabled"] is True


# -- lease expiry ----------------------------------------------------------------------------
def test_expired_lease_puts_the_job_back_at_the_head_with_attempt_plus_one(client, redis):
    first = enqueue(client, title="first")
    second = enqueue(client, title="second")
    poll(client, worker="w1")
    expire_leases(redis)
    again = poll(client, worker="w2").get_json()  # expiry is also handled lazily on poll
    assert again["job_id"] == first["job_id"] and again["attempt"] == 2 and again["worker_id"] == "w2"
    history = [e["event"] for e in again["history"]]
    assert history == ["enqueued", "leased", "requeued", "leased"]
    assert poll(client, worker="w2").get_json()["job_id"] == second["job_id"]


def test_expired_lease_is_requeued_by_the_scheduler_tick_within_two_seconds(client, app):
    from object_challenge.jobs.service import jobs

    job = enqueue(client)
    poll(client, worker="w1")  # JOB_LEASE_SECONDS is 1 in these tests; nobody heartbeats

    def requeued():
        with app.app_context():
            jobs().tick()
        return client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()["state"] == "queued"

    wait_until(requeued, timeout=app.config["JOB_LEASE_SECONDS"] + 2, interval=0.5, message="requeue")
    assert client.get("/newapi/queue", headers=WORKER).get_json()["queue"][0]["job_id"] == job["job_id"]


def test_lease_expiry_fails_the_job_after_max_attempts(client, redis, app):
    job = enqueue(client)
    for attempt in range(1, app.config["JOB_MAX_ATTEMPTS"] + 1):
        leased = poll(client, worker=f"w{attempt}").get_json()
        assert leased["attempt"] == attempt
        expire_leases(redis)
    assert poll(client).status_code == 404
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()
    assert got["state"] == "failed" and got["attempt"] == app.config["JOB_MAX_ATTEMPTS"]
    assert "lease expired" in got["result"]["message"]


def test_completing_after_the_lease_expired_is_a_conflict(client, redis):
    job = enqueue(client)
    poll(client, worker="w1")
    expire_leases(redis)
    poll(client, worker="w2")
    r = client.patch(f"/newapi/jobs/{job['job_id']}/completed?worker_id=w1", json={"failed": False}, headers=WORKER)
    assert r.status_code == 409 and r.get_json()["error"] == "not_lease_holder"


# -- completion and jobs ------------------------------------------------------------------------
def test_complete_with_the_reference_body_records_the_result(client):
    job = enqueue(client)
    poll(client, worker=None)
    info = {"start_time": "t0", "worker": "host", "completed": True}
    r = client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False, "info": info}, headers=WORKER)
    assert r.status_code == 200
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()
    assert got["state"] == "completed" and got["info"] == info and got["result"]["info"] == info
    assert [e["event"] for e in got["history"]] == ["enqueued", "leased", "completed"]
    assert got["finished_at"]


def test_reference_completion_records_the_worker_it_reports_when_none_held_the_lease(client):
    job = enqueue(client)
    poll(client, worker=None)
    info = {"worker_id": "00000000-1111-2222-3333-444444444444", "completed": True}
    client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False, "info": info}, headers=WORKER)
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()
    assert got["worker_id"] == info["worker_id"]


def test_explicit_failure_is_final(client, redis):
    job = enqueue(client)
    poll(client, worker="w1")
    r = client.patch(
        f"/newapi/jobs/{job['job_id']}/completed?worker_id=w1",
        json={"failed": True, "info": {}, "message": "boom"},
        headers=WORKER,
    )
    assert r.status_code == 200 and r.get_json()["state"] == "failed"
    expire_leases(redis)
    assert poll(client).status_code == 404
    again = client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False}, headers=WORKER)
    assert again.status_code == 409
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()["result"]["message"] == "boom"


def test_completing_a_queued_job_is_a_conflict(client):
    job = enqueue(client)
    r = client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False}, headers=WORKER)
    assert r.status_code == 409 and r.get_json()["error"] == "job_not_running"


def test_get_job_reads_every_state(client, redis):
    queued = enqueue(client)
    assert client.get(f"/newapi/jobs/{queued['job_id']}", headers=USER).get_json()["state"] == "queued"
    poll(client, worker="w1")
    assert client.get(f"/newapi/jobs/{queued['job_id']}", headers=USER).get_json()["state"] == "running"
    client.patch(f"/newapi/jobs/{queued['job_id']}/completed", json={"failed": False}, headers=WORKER)
    assert client.get(f"/newapi/jobs/{queued['job_id']}", headers=USER).get_json()["state"] == "completed"
    failed = enqueue(client)
    poll(client, worker="w1")
    client.patch(f"/newapi/jobs/{failed['job_id']}/completed", json={"failed": True}, headers=WORKER)
    assert client.get(f"/newapi/jobs/{failed['job_id']}", headers=USER).get_json()["state"] == "failed"


def record(app):
    """The recorder's step (the scheduler runs it every 0.5 s; tests have no scheduler)."""
    from object_challenge.jobs.service import jobs

    with app.app_context():
        return jobs().record()


def test_finished_jobs_survive_the_loss_of_redis(client, redis, app):
    job = enqueue(client)
    poll(client, worker="w1")
    client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False, "info": {"x": 1}}, headers=WORKER)
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()["info"] == {"x": 1}  # Redis
    assert record(app) == 1
    redis.flushdb()
    got = client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).get_json()
    assert got["state"] == "completed" and got["info"] == {"x": 1}


def test_a_record_written_again_after_a_crash_is_replaced_not_doubled(client, app):
    """The recorder stopped after writing a finished job and before Redis forgot it: the
    next pass writes the same job again (an insert of an id that is there) and keeps one."""
    from object_challenge.jobs.service import jobs

    first, second = enqueue(client), enqueue(client)
    for job in (first, second):
        poll(client, worker="w1")
        client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False}, headers=WORKER)
    with app.app_context():
        service = jobs()
        finished, _active = service.queue.take_unrecorded()
        stale = next(d for d in finished if d["job_id"] == first["job_id"])
        service.store.write([{**stale, "info": {"old": True}}], [])  # the crashed pass's write
    assert record(app) == 2  # both, one of them already there
    with app.app_context():
        collection = jobs().store.final["completed"]
        assert collection.count_documents({"_id": {"$in": [first["job_id"], second["job_id"]]}}) == 2
        assert collection.find_one({"_id": first["job_id"]})["info"] != {"old": True}


def test_delete_job_forgets_it(client):
    job = enqueue(client)
    assert client.delete(f"/newapi/jobs/{job['job_id']}", headers=ADMIN).status_code == 200
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=ADMIN).status_code == 404
    assert poll(client).status_code == 404


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/newapi/jobs/nope"),
        ("delete", "/newapi/jobs/nope"),
        ("patch", "/newapi/jobs/nope/completed"),
        ("get", "/newapi/workers/nope"),
        ("delete", "/newapi/workers/nope"),
        ("get", "/newapi/data/m/nope"),
        ("delete", "/newapi/data/m/nope"),
    ],
)
def test_unknown_ids_are_404_json(client, method, path):
    r = getattr(client, method)(path, headers=ADMIN, json={"failed": False} if method == "patch" else None)
    assert r.status_code == 404 and r.get_json()["error"]


# -- module data -------------------------------------------------------------------------------
def test_data_store_round_trips_unicode_and_nesting(client):
    doc = {"options": {"crf": 18, "preset": "slów", "maps": [{"a": [1, 2, {"ü": None}]}]}, "ok": True}
    assert client.post("/newapi/data/ffmpeg/hq", json=doc, headers=WORKER).status_code in (200, 201)
    r = client.get("/newapi/data/ffmpeg/hq", headers=WORKER)
    assert r.status_code == 200 and r.get_json() == doc
    assert json.loads(r.get_data())["options"]["preset"] == "slów"
    assert client.get("/newapi/data/x264/hq", headers=WORKER).status_code == 404  # per module
    assert client.delete("/newapi/data/ffmpeg/hq", headers=WORKER).status_code == 200
    assert client.get("/newapi/data/ffmpeg/hq", headers=WORKER).status_code == 404


def test_data_store_wants_a_json_object(client):
    assert client.post("/newapi/data/ffmpeg/x", json=[1, 2], headers=WORKER).status_code == 400


def test_data_is_stored_where_the_seed_settings_say(client, app):
    from object_challenge.core.extensions import mongo

    client.post("/newapi/data/ffmpeg/hq", json={"a": 1}, headers=WORKER)
    with app.app_context():
        cfg = app.config
        coll = mongo.cx[cfg["MONGO_DATA_DB"]][cfg["MONGO_DATA_COLL_PREFIX"] + "ffmpeg"]
        assert coll.find_one({"name": "hq"})["data"] == {"a": 1}


def test_jobs_are_stored_in_the_seed_collections(client, app):
    from object_challenge.core.extensions import mongo

    job = enqueue(client)
    poll(client)
    client.patch(f"/newapi/jobs/{job['job_id']}/completed", json={"failed": False}, headers=WORKER)
    record(app)
    with app.app_context():
        cfg = app.config
        db = mongo.cx[cfg["MONGO_JOB_DB"]]
        assert db[cfg["MONGO_JOB_COLL_COMPLETED"]].find_one({"job_id": job["job_id"]})["state"] == "completed"
        assert db[cfg["MONGO_JOB_COLL_QUEUED"]].find_one({"job_id": job["job_id"]}) is None


# -- status ------------------------------------------------------------------------------------
def test_status_health_is_200_when_both_stores_answer(client):
    r = client.get("/newapi/status/health", headers=WORKER)
    assert r.status_code == 200 and r.get_json()["status"] == "online"


def test_status_health_is_503_naming_redis_when_it_is_down(config):
    from object_challenge.app import create_app
    from object_challenge.dev.devstores import free_port

    config.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    disconnect_all()  # MongoEngine keeps one "default" connection per process
    app = create_app(config)
    r = app.test_client().get(
        "/newapi/status/health",
        headers={"X-Gateway-Secret": app.config["GATEWAY_SECRET"], "X-User-Id": "4", "X-User-Role": "worker"},
    )
    assert r.status_code == 503
    assert "redis" in r.get_json()["stores"] and "mongo" not in r.get_json()["stores"]
    r = app.test_client().post(
        "/newapi/queue",
        json=JOB,
        headers={"X-Gateway-Secret": app.config["GATEWAY_SECRET"], "X-User-Id": "1", "X-User-Role": "user"},
    )
    assert r.status_code == 503 and r.get_json()["error"] == "store_unavailable"
    disconnect_all()


def test_status_health_is_503_naming_mongo_when_it_is_down(config):
    from object_challenge.app import create_app
    from object_challenge.dev.devstores import free_port

    config.MONGO_URI = f"mongodb://127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=300"
    config.MONGODB_SETTINGS["host"] = config.MONGO_URI
    disconnect_all()  # MongoEngine keeps one "default" connection per process
    app = create_app(config)
    r = app.test_client().get(
        "/newapi/status/health",
        headers={"X-Gateway-Secret": app.config["GATEWAY_SECRET"], "X-User-Id": "4", "X-User-Role": "worker"},
    )
    assert r.status_code == 503
    assert "mongo" in r.get_json()["stores"] and "redis" not in r.get_json()["stores"]
    disconnect_all()


def test_status_config_shows_settings_and_masks_passwords(client, app):
    app.config["MONGO_URI"] = "mongodb://root:s3cret@db.example:27017/x"
    body = client.get("/newapi/status/config", headers=WORKER).get_json()
    assert "s3cret" not in json.dumps(body)
    assert body["backend"]["MONGO_URI"] == "mongodb://root:********@db.example:27017/x"
    assert body["settings"]["JOB_MAX_ATTEMPTS"] == 3 and body["version"] and "uptime" in body


def test_openapi_document_is_served(client):
    r = client.get("/newapi/docs/openapi.json")
    assert r.status_code == 200 and "/queue/poll" in r.get_json()["paths"]


# -- roles --------------------------------------------------------------------------------------
def test_no_or_unknown_token_is_401(client):
    assert client.get("/newapi/queue").status_code == 401
    assert client.get("/newapi/queue/poll", headers=auth("nope")).status_code == 401


@pytest.mark.parametrize(
    "method,path,headers,status",
    [
        ("get", "/newapi/queue", USER, 403),
        ("get", "/newapi/queue/poll", USER, 403),
        ("delete", "/newapi/queue", WORKER, 403),
        ("patch", "/newapi/queue", WORKER, 403),
        ("delete", "/newapi/workers/w1", WORKER, 403),
        ("get", "/newapi/workers", USER, 403),
        ("post", "/newapi/workers/w1", USER, 403),
        ("patch", "/newapi/jobs/x/completed", USER, 403),
        ("get", "/newapi/data/m/n", USER, 403),
    ],
)
def test_roles_that_may_not_do_a_thing_get_403(client, method, path, headers, status):
    assert getattr(client, method)(path, headers=headers, json={}).status_code == status


def test_users_read_only_their_own_jobs(client):
    job = enqueue(client, headers=USER)
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).status_code == 200
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER2).status_code == 404
    assert client.delete(f"/newapi/jobs/{job['job_id']}", headers=USER2).status_code == 404
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=WORKER).status_code == 200


def test_get_and_clear_a_queue_longer_than_one_lookup_chunk(client, app):
    from object_challenge.accounts.identity import Identity
    from object_challenge.jobs.service import jobs
    from object_challenge.jobs.store import IN_CHUNK

    count = IN_CHUNK * 2 + 10
    with app.app_context():
        for i in range(count):
            jobs().enqueue({**JOB, "job_title": f"j{i}"}, "long", Identity(1, "a", "user"))
    listed = client.get("/newapi/queue?queue=long", headers=WORKER).get_json()
    assert listed["entries"] == count and [j["job_title"] for j in listed["queue"]][-1] == f"j{count - 1}"
    assert client.delete("/newapi/queue?queue=long", headers=ADMIN).get_json()["deleted"] == count
    assert client.get("/newapi/queue?queue=long", headers=WORKER).get_json()["entries"] == 0
