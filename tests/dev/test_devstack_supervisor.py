"""``make run`` is a supervisor: kill -9 of any one child is followed by its restart
within 5 s, and no job is lost (README: "What survives a crash").

A stack of its own (the session's ``stack`` fixture is shared and must not lose its
children). The measured times are printed (``pytest -s``) and match the README table.
"""

import os
import signal
import tempfile
import time

import pytest
import redis as redis_lib
import requests
from helpers import auth, wait_until

from object_challenge.dev.devstack import SERVICES, Stack

pytestmark = pytest.mark.stack

USER, WORKER = auth("token_1"), auth("token_worker")
RESTART_WITHIN = 5.0


@pytest.fixture(scope="module")
def supervised(root_conftest):
    var = tempfile.mkdtemp(prefix="oc-test-supervised-")
    # no gateway rate limits: the test reads every job's state in a loop
    stack = Stack(env=root_conftest.stack_env(RATE_LIMITS="off"), var_dir=var, mongo_file=True, quiet=True, workers=1)
    stack.start()
    stack.supervise(interval=0.1)
    yield stack
    stack.stop()


def _enqueue(stack, n, queue="queue"):
    ids = []
    for i in range(n):
        r = requests.post(
            f"{stack.url}/newapi/queue",
            params={"queue": queue},
            json={"job_title": f"s{i}", "tasks": [{"module": "echo", "data": {"i": i}}]},
            headers=USER,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["job_id"])
    return ids


def _states(stack, ids):
    states = {}
    for job_id in ids:
        try:
            r = requests.get(f"{stack.url}/newapi/jobs/{job_id}", headers=USER, timeout=5)
            states[job_id] = r.json().get("state") if r.status_code == 200 else f"http {r.status_code}"
        except requests.RequestException as exc:
            states[job_id] = exc.__class__.__name__
    return states


def _all_completed(stack, ids):
    states = _states(stack, ids)
    return all(s == "completed" for s in states.values()) or None


def _answers(stack, name):
    """The child's own check: its port answers (through the gateway where it is behind it)."""
    try:
        if name == "redis":
            return redis_lib.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=1).ping()
        if name == "mongo":
            import pymongo

            client = pymongo.MongoClient(stack.env["MONGO_URI"], serverSelectionTimeoutMS=500)
            try:
                return client.admin.command("ping")["ok"] == 1
            finally:
                client.close()
        if name in SERVICES:
            addr = stack.settings[f"{name.upper()}_ADDR"]
            return requests.get(f"http://{addr}/healthz", timeout=1).status_code == 200
        if name == "nginx":
            return requests.get(f"{stack.url}/newapi/whoami", headers=USER, timeout=1).status_code == 200
        return True  # scheduler, workers: a live process is the check (their work is checked below)
    except Exception:
        return False


def _kill_and_time(stack, name):
    """Seconds until the child runs again (a new process), and until it answers."""
    old = stack.pid(name)
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)

    def restarted():
        with stack.lock:
            process = dict(stack.processes)[name]
        return process.pid != old and process.poll() is None

    wait_until(restarted, timeout=15, interval=0.05, message=f"{name} restarted")
    running = time.monotonic() - started
    wait_until(lambda: _answers(stack, name), timeout=30, interval=0.05, message=f"{name} answering again")
    return running, time.monotonic() - started


def test_kill_9_of_each_child_restarts_it_within_5_s_and_loses_no_job(supervised):
    stack = supervised
    before = _enqueue(stack, 10)
    wait_until(lambda: _all_completed(stack, before), timeout=60, interval=0.3, message="jobs before the kills")
    measured = {}
    jobs = []
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=2)
    children = ("worker-1", "scheduler", "api", "jobs", "publish", "storage", "nginx", "redis", "mongo")
    children += ("runner-1", "campaigns-1", "playerapi")  # the other workers and the player API stand-in
    for name in children:
        jobs += _enqueue(stack, 3)
        if name == "redis":
            client.set("oc:test:written-before-the-kill", 1)
        time.sleep(1.2)  # the append-only file is written every second
        measured[name] = _kill_and_time(stack, name)
    # Redis came back from its append-only file (var/redis/), not empty
    assert client.get("oc:test:written-before-the-kill") == b"1"
    print(
        "\nafter kill -9, restarted / answering (s): "
        + ", ".join(f"{n} {r:.1f}/{a:.1f}" for n, (r, a) in measured.items())
    )
    slow = {n: round(r, 1) for n, (r, _a) in measured.items() if r > RESTART_WITHIN}
    assert not slow, f"children restarted later than {RESTART_WITHIN} s: {slow}"
    jobs += _enqueue(stack, 3)
    wait_until(
        lambda: _all_completed(stack, before + jobs), timeout=90, interval=0.3, message=f"every job completed: {jobs}"
    )
    assert (stack.logs / "stack.log").read_text().count("restarted") >= len(measured)


def test_redis_that_comes_back_empty_is_recovered_by_the_scheduler(supervised):
    stack = supervised
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"])
    # jobs MongoDB knows as queued, then Redis loses everything
    stop = requests.post(
        f"{stack.url}/newapi/queue",
        params={"queue": "parked"},
        json={"job_title": "parked", "tasks": [{"module": "echo", "data": {}}]},
        headers=USER,
        timeout=10,
    )
    assert stop.status_code == 201
    job_id = stop.json()["job_id"]
    # the recorder writes the job's MongoDB record behind Redis (jobs/service.py): once it is
    # there, MongoDB knows the job is queued, and that is what a recovery goes by
    import pymongo

    mongo = pymongo.MongoClient(stack.env["MONGO_URI"], serverSelectionTimeoutMS=2000)
    queued = mongo[stack.settings["MONGO_JOB_DB"]][stack.settings["MONGO_JOB_COLL_QUEUED"]]
    wait_until(lambda: queued.find_one({"_id": job_id}), timeout=10, interval=0.2, message="the job's record")
    mongo.close()
    client.flushall()
    from object_challenge.ops.recovery import MARKER

    wait_until(lambda: client.get(MARKER), timeout=10, message="the scheduler's recovery")
    # the job is back in its queue (nobody polls 'parked'), the users too (the snapshot)
    r = wait_until(
        lambda: (
            (x := requests.get(f"{stack.url}/newapi/queue", params={"queue": "parked"}, headers=WORKER, timeout=5))
            and x.status_code == 200
            and job_id in x.text
            and x
        ),
        timeout=10,
        message="the parked job queued again",
    )
    assert r.status_code == 200
