"""The job queue through the real gateway (make run's stack): roles, Basic auth in the
URL as the reference worker sends it, the reference worker's call sequence, the
scheduler's requeue, and our worker program."""

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from helpers import auth, wait_until

ROOT = Path(__file__).resolve().parents[2]
USER, WORKER, ADMIN = auth("token_1"), auth("token_worker"), auth("token_admin")
JOB = {"job_title": "t", "tasks": [{"module": "echo", "data": {"x": 1}}]}


def api(stack):
    return stack.url + "/newapi"


def basic_url(stack, token="token_worker"):
    parts = urlsplit(stack.url)
    return f"http://{token}:@{parts.hostname}:{parts.port}/newapi"


def fresh_queue():
    return f"gw-{uuid.uuid4().hex[:8]}"


def enqueue(stack, queue, title="t", tasks=None, headers=USER):
    r = requests.post(
        api(stack) + "/queue",
        params={"queue": queue},
        json={"job_title": title, "tasks": tasks or JOB["tasks"]},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return r.json()


def job(stack, job_id, headers=USER):
    return requests.get(f"{api(stack)}/jobs/{job_id}", headers=headers, timeout=10).json()


# -- auth and roles --------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, auth("not-a-token"), {"Authorization": "Basic bm9wZTo="}])
def test_no_or_unknown_token_is_401(stack, headers):
    r = requests.get(api(stack) + "/queue", headers=headers, timeout=10)
    assert r.status_code == 401 and r.json()["error"]


def test_token_as_basic_user_name_in_the_url_is_accepted(stack):
    r = requests.get(basic_url(stack) + "/queue", timeout=10)
    assert r.status_code == 200 and "attributes" in r.json()


@pytest.mark.parametrize(
    "method,path,headers,status",
    [
        ("get", "/queue/poll?queue=roles", USER, 403),
        ("get", "/queue?queue=roles", USER, 403),
        ("patch", "/queue?queue=roles", WORKER, 403),
        ("delete", "/queue?queue=roles", WORKER, 403),
        ("patch", "/workers/w-roles", WORKER, 403),
        ("delete", "/workers/w-roles", USER, 403),
        ("post", "/workers/w-roles", USER, 403),
        ("get", "/queue/poll?queue=roles", WORKER, 404),
        ("get", "/queue?queue=roles", WORKER, 200),
        ("post", "/workers/w-roles", WORKER, 200),
        ("get", "/workers", WORKER, 200),
        ("get", "/status/health", WORKER, 200),
        ("get", "/status/config", WORKER, 200),
        ("patch", "/queue?queue=roles", ADMIN, 200),
        ("patch", "/workers/w-roles", ADMIN, 200),
        ("get", "/queue/poll?queue=roles", ADMIN, 404),
    ],
)
def test_roles_through_the_gateway(stack, method, path, headers, status):
    r = requests.request(method, api(stack) + path, headers=headers, json={"disabled": False}, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def test_users_enqueue_and_read_only_their_own_jobs(stack):
    queue = fresh_queue()
    mine = enqueue(stack, queue)
    assert job(stack, mine["job_id"])["state"] == "queued"
    other = requests.get(f"{api(stack)}/jobs/{mine['job_id']}", headers=auth("token_2"), timeout=10)
    assert other.status_code in (403, 404)


def test_unknown_job_and_bad_job_are_json_errors(stack):
    r = requests.get(f"{api(stack)}/jobs/{uuid.uuid4()}", headers=WORKER, timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "job_not_found"
    r = requests.post(api(stack) + "/queue", data="nope", headers=USER, timeout=10)
    assert r.status_code == 400 and r.json()["error"]


# -- the reference worker's calls -------------------------------------------------------------
def test_the_reference_worker_call_sequence_keeps_a_lease_past_job_lease_seconds(stack):
    """GET /queue, GET /workers/W, GET /queue/poll (no worker_id), POST heartbeats every
    second naming the job, PATCH completed without worker_id -- all through Basic auth in
    the URL, exactly as JamesTheBard/sisyphus-client calls them."""
    base, worker = basic_url(stack), str(uuid.uuid4())
    lease = float(stack.env["JOB_LEASE_SECONDS"])
    # jobs other suites left on the default queue are the stack worker's to run
    wait_until(
        lambda: requests.get(api(stack) + "/queue", headers=WORKER, timeout=10).json()["entries"] == 0,
        timeout=60,
        interval=0.5,
        message="default queue drained",
    )
    # the stack's own worker must not take this job from the default queue
    requests.patch(api(stack) + "/workers/local-worker-1", json={"disabled": True}, headers=ADMIN, timeout=10)
    try:
        target = enqueue(stack, None, title="reference", tasks=[{"module": "sleep", "data": {"seconds": 1}}])
        assert requests.post(f"{base}/workers/{worker}", json={"status": "startup"}, timeout=10).status_code == 200
        queue = requests.get(base + "/queue", timeout=10)
        assert queue.status_code == 200 and queue.json()["attributes"]["disabled"] is False
        me = requests.get(f"{base}/workers/{worker}", timeout=10)
        assert me.status_code == 200 and me.json()["attributes"]["disabled"] is False
        polled = requests.get(base + "/queue/poll", timeout=10)
        assert polled.status_code == 200
        data = polled.json()
        assert data["job_id"] == target["job_id"] and data["job_title"] and data["tasks"][0]["data"] is not None
        started = time.monotonic()
        while time.monotonic() - started < lease * 2:  # twice the lease, kept by heartbeats
            beat = requests.post(
                f"{base}/workers/{worker}",
                timeout=10,
                json={"status": "in_progress", "job_id": data["job_id"], "hostname": "h"},
            )
            assert beat.status_code == 200
            time.sleep(1)
        assert job(stack, data["job_id"])["state"] == "running"
        done = requests.patch(
            f"{base}/jobs/{data['job_id']}/completed",
            timeout=10,
            json={"failed": False, "info": {"worker_id": worker, "completed": True}},
        )
        assert done.status_code == 200
        final = job(stack, data["job_id"])
        assert final["state"] == "completed" and final["attempt"] == 1 and final["worker_id"] == worker
    finally:
        requests.patch(api(stack) + "/workers/local-worker-1", json={"disabled": False}, headers=ADMIN, timeout=10)


def test_the_stack_worker_runs_a_job_from_the_default_queue(stack):
    target = enqueue(stack, None, title="for the stack worker")
    wait_until(
        lambda: job(stack, target["job_id"])["state"] == "completed",
        timeout=30,
        interval=0.2,
        message="stack worker completed the job",
    )
    assert job(stack, target["job_id"])["worker_id"] == "local-worker-1"


# -- leases through the scheduler --------------------------------------------------------------
def test_the_scheduler_requeues_an_expired_lease_at_the_head_within_two_seconds(stack):
    queue = fresh_queue()
    first = enqueue(stack, queue, title="first")
    enqueue(stack, queue, title="second")
    polled = requests.get(
        api(stack) + "/queue/poll", params={"queue": queue, "worker_id": "silent"}, headers=WORKER, timeout=10
    ).json()
    assert polled["job_id"] == first["job_id"]
    lease = float(stack.env["JOB_LEASE_SECONDS"])
    wait_until(
        lambda: job(stack, first["job_id"])["state"] == "queued",
        timeout=lease + 2,
        interval=0.1,
        message="requeued by the scheduler",
    )
    head = requests.get(api(stack) + "/queue", params={"queue": queue}, headers=WORKER, timeout=10).json()
    assert head["queue"][0]["job_id"] == first["job_id"] and head["queue"][0]["attempt"] == 1
    again = requests.get(
        api(stack) + "/queue/poll", params={"queue": queue, "worker_id": "w2"}, headers=WORKER, timeout=10
    ).json()
    assert again["job_id"] == first["job_id"] and again["attempt"] == 2


def test_killed_worker_process_job_completes_on_another_with_attempt_2(stack, tmp_path):
    queue = fresh_queue()
    target = enqueue(stack, queue, title="crash", tasks=[{"module": "sleep", "data": {"seconds": 2}}])
    processes = []

    def start(name):
        log = open(tmp_path / f"{name}.log", "wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "worker",
                "--queue",
                queue,
                "--worker-id",
                name,
                "--url",
                api(stack),
                "--poll-interval",
                "0.2",
            ],
            cwd=ROOT,
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    try:
        first = start("gw-crash-1")
        wait_until(
            lambda: job(stack, target["job_id"])["worker_id"] == "gw-crash-1",
            timeout=30,
            interval=0.2,
            message="first worker took the job",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        start("gw-crash-2")
        wait_until(
            lambda: job(stack, target["job_id"])["state"] == "completed",
            timeout=30,
            interval=0.2,
            message="completed by the second worker",
        )
        final = job(stack, target["job_id"])
        assert final["attempt"] == 2 and final["worker_id"] == "gw-crash-2"
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
