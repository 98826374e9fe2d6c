"""`manage.py jobs ...`: tick, recover, stats."""

import json

from helpers import auth
from pymongo.collection import Collection

USER, WORKER = auth("token_1"), auth("token_worker")
JOB = {"job_title": "t", "tasks": [{"module": "echo", "data": 1}]}


def test_jobs_recover_requeues_what_redis_lost_oldest_first_keeping_attempts(client, runner, redis):
    first = client.post("/newapi/queue", json=JOB, headers=USER).get_json()
    second = client.post("/newapi/queue", json=JOB, headers=USER).get_json()
    client.get("/newapi/queue/poll?worker_id=w1", headers=WORKER)  # first is running, attempt 1
    assert runner.invoke(args=["jobs", "tick"]).exit_code == 0  # the recorder writes both records
    redis.flushdb()
    result = runner.invoke(args=["jobs", "recover"])
    assert result.exit_code == 0 and "2 jobs recovered" in result.output
    again = client.get("/newapi/queue/poll?worker_id=w2", headers=WORKER).get_json()
    assert again["job_id"] == first["job_id"] and again["attempt"] == 2
    assert "recovered" in [e["event"] for e in again["history"]]
    assert client.get("/newapi/queue/poll?worker_id=w2", headers=WORKER).get_json()["job_id"] == second["job_id"]
    assert "0 jobs recovered" in runner.invoke(args=["jobs", "recover"]).output


def test_jobs_tick_requeues_expired_leases(client, runner, redis):
    from object_challenge.jobs import keys

    job = client.post("/newapi/queue", json=JOB, headers=USER).get_json()
    client.get("/newapi/queue/poll?worker_id=w1", headers=WORKER)
    redis.zadd(keys.LEASES, {job["job_id"]: 0})
    result = runner.invoke(args=["jobs", "tick"])
    assert result.exit_code == 0 and "requeued" in result.output
    assert client.get(f"/newapi/jobs/{job['job_id']}", headers=USER).get_json()["state"] == "queued"


def test_jobs_stats_counts_by_state(client, runner):
    client.post("/newapi/queue", json=JOB, headers=USER)
    stats = json.loads(runner.invoke(args=["jobs", "stats"]).output)
    assert stats["queues"]["queue"]["waiting"] == 1 and stats["completed"] == 0


def test_jobs_recover_asks_mongodb_per_collection_not_per_job(client, runner, redis, monkeypatch):
    """The scheduler runs it after every Redis restart: with 200 jobs queued on the MongoDB
    stand-in under load, one final-state lookup per job made a recovery pass 18 s long."""

    ids = [client.post("/newapi/queue", json=JOB, headers=USER).get_json()["job_id"] for _ in range(30)]
    assert runner.invoke(args=["jobs", "tick"]).exit_code == 0  # the recorder writes the records
    redis.flushdb()
    lookups = []  # one-document reads (find_one), as a per-job check of the final collections made
    real = Collection.find_one
    monkeypatch.setattr(Collection, "find_one", lambda self, *a, **kw: lookups.append(a) or real(self, *a, **kw))
    result = runner.invoke(args=["jobs", "recover"])
    assert result.exit_code == 0 and "30 jobs recovered" in result.output
    assert lookups == []
    assert "0 jobs recovered" in runner.invoke(args=["jobs", "recover"]).output  # Redis has them now
    assert len(ids) == 30
