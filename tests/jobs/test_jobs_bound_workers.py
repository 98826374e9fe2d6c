"""Issue 17: a worker token made by `user add NAME --role worker` acts only for worker ids
starting with NAME; the fixture worker token stays unbound (the reference worker shares it)."""

from helpers import auth

USER, SHARED = auth("token_1"), auth("token_worker")
JOB = {"job_title": "t", "tasks": [{"module": "echo", "data": 1}]}


def test_a_bound_worker_acts_only_for_its_own_worker_ids(client, runner):
    result = runner.invoke(args=["user", "add", "hosta", "--role", "worker", "--token", "tok_hosta"])
    assert result.exit_code == 0, result.output
    bound = auth("tok_hosta")
    client.post("/newapi/queue", json=JOB, headers=USER)
    client.post("/newapi/queue", json=JOB, headers=USER)

    assert client.get("/newapi/queue/poll?worker_id=hostb-1", headers=bound).status_code == 403
    assert client.get("/newapi/queue/poll", headers=bound).status_code == 403  # no worker id: refused
    assert client.post("/newapi/workers/hostb-1", json={}, headers=bound).status_code == 403
    mine = client.get("/newapi/queue/poll?worker_id=hosta-1", headers=bound).get_json()
    assert mine["worker_id"] == "hosta-1"
    assert client.post("/newapi/workers/hosta-1", json={}, headers=bound).status_code == 200

    theirs = client.get("/newapi/queue/poll?worker_id=hostb-1", headers=SHARED).get_json()  # unbound: any id
    done = {"failed": False, "info": {}}
    # another worker's lease: refused by id (403) ...
    r = client.patch(f"/newapi/jobs/{theirs['job_id']}/completed?worker_id=hostb-1", json=done, headers=bound)
    assert r.status_code == 403 and r.get_json()["error"] == "worker_not_bound"
    r = client.patch(f"/newapi/jobs/{theirs['job_id']}/completed", json=done, headers=bound)
    assert r.status_code == 403
    r = client.post(f"/newapi/jobs/{theirs['job_id']}/release?worker_id=hostb-1", json={}, headers=bound)
    assert r.status_code == 403
    # ... or by lease (409) when it names itself
    r = client.patch(f"/newapi/jobs/{theirs['job_id']}/completed?worker_id=hosta-1", json=done, headers=bound)
    assert r.status_code == 409 and r.get_json()["error"] == "not_lease_holder"
    r = client.patch(f"/newapi/jobs/{mine['job_id']}/completed?worker_id=hosta-1", json=done, headers=bound)
    assert r.status_code == 200 and r.get_json()["state"] == "completed"


def test_bound_workers_whose_worker_ids_would_overlap_are_refused(runner):
    """'rack1' acts for ids starting 'rack1': a worker 'rack12' (or 'rack') would share some of
    them (rack12-1), and either token could then complete the other's jobs."""
    assert runner.invoke(args=["user", "add", "rack1", "--role", "worker"]).exit_code == 0
    for name in ("rack12", "rack"):
        result = runner.invoke(args=["user", "add", name, "--role", "worker"])
        assert result.exit_code == 1, result.output
        assert "rack1" in result.output and "Traceback" not in result.output
    assert runner.invoke(args=["user", "add", "rack2", "--role", "worker"]).exit_code == 0
    assert runner.invoke(args=["user", "add", "rack12", "--role", "user"]).exit_code == 0  # no worker ids


def test_polls_go_on_from_redis_while_mongodb_is_down(client, monkeypatch):
    """The binding is read from MongoDB; while MongoDB is down the last binding read stays in
    force, so the queue keeps working from Redis (docs/jobs.md, *What each crash costs*) instead
    of every worker's poll turning into a 503 once the 10 s cache ran out."""
    from types import SimpleNamespace

    import pymongo.errors

    from object_challenge.jobs import service

    for _ in range(2):
        client.post("/newapi/queue", json=JOB, headers=USER)
    assert client.get("/newapi/queue/poll?worker_id=w-1", headers=SHARED).status_code == 200  # binding read

    def mongo_down(**_):
        raise pymongo.errors.ServerSelectionTimeoutError("127.0.0.1: timed out")

    monkeypatch.setattr(service, "User", SimpleNamespace(objects=mongo_down))
    monkeypatch.setattr(service, "BOUND_TTL_S", 0.0)
    answer = client.get("/newapi/queue/poll?worker_id=w-1", headers=SHARED)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert client.post("/newapi/workers/w-1", json={}, headers=SHARED).status_code == 200


def test_the_gateway_snapshot_carries_the_binding(app, runner, redis):
    """The gateway answers polls and completions itself (lua/oc/job_lease.lua) and checks the
    binding from the snapshot: without worker_prefix there, a bound token acted for any id."""
    import hashlib
    import json

    assert runner.invoke(args=["user", "add", "hostq", "--role", "worker", "--token", "tok_hostq"]).exit_code == 0
    entry = json.loads(redis.hget("oc:gw:tokens", hashlib.sha256(b"tok_hostq").hexdigest()))
    assert entry["worker_prefix"] == "hostq"
    shared = json.loads(redis.hget("oc:gw:tokens", hashlib.sha256(b"token_worker").hexdigest()))
    assert "worker_prefix" not in shared  # the fixture token stays unbound


def test_a_bound_worker_through_the_gateway(stack):
    """The same binding on the gateway's own poll and completion path (make run: a token made
    for 'hosta' polled as 'hostc-1' and completed its job, 200 both)."""
    import requests
    from gw import rid
    from helpers import wait_until

    name = rid("gwb").replace("-", "")
    token = stack.manage("user", "add", name, "--role", "worker").stdout.split("token: ")[1].split()[0]
    bound = auth(token)
    api = stack.url + "/newapi"
    wait_until(lambda: requests.get(api + "/workers", headers=bound, timeout=10).status_code == 200, timeout=10)
    queue = rid("gwq")
    for _ in range(2):
        assert requests.post(f"{api}/queue?queue={queue}", json=JOB, headers=USER, timeout=10).status_code == 201
    poll = f"{api}/queue/poll?queue={queue}"
    assert requests.get(f"{poll}&worker_id=other-1", headers=bound, timeout=10).status_code == 403
    assert requests.get(poll, headers=bound, timeout=10).status_code == 403
    theirs = requests.get(f"{poll}&worker_id=other-1", headers=SHARED, timeout=10).json()
    done = {"failed": False, "info": {}}
    r = requests.patch(
        f"{api}/jobs/{theirs['job_id']}/completed?worker_id=other-1", json=done, headers=bound, timeout=10
    )
    assert r.status_code == 403 and r.json()["error"] == "worker_not_bound", r.text
    mine = requests.get(f"{poll}&worker_id={name}-1", headers=bound, timeout=10)
    assert mine.status_code == 200, mine.text
    r = requests.patch(
        f"{api}/jobs/{mine.json()['job_id']}/completed?worker_id={name}-1", json=done, headers=bound, timeout=10
    )
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
