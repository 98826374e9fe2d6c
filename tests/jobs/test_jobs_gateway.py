"""The job queue through the real gateway (make run's stack): roles, Basic auth in the
URL as the reference worker sends it, the reference worker's call sequence, the
scheduler's requeue, and our worker program."""

import os
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
    drain_default_queue(stack)
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


def drain_default_queue(stack):
    """Jobs other suites left on the default queue are the stack worker's to run."""
    wait_until(
        lambda: requests.get(api(stack) + "/queue", headers=WORKER, timeout=10).json()["entries"] == 0,
        timeout=60,
        interval=0.5,
        message="default queue drained",
    )


CLEANUP = [{"module": "cleanup", "data": {"delete": []}}]  # the job of issue 13's defect


def test_the_reference_worker_completes_a_cleanup_job_on_the_default_queue_beside_local_worker_1(stack):
    """Issue 13's defect, replayed with JamesTheBard/sisyphus-client 1.4.0b1's own calls
    (client.py, app/heartbeat.py, app/tasks.py; docs/jobs.md has the run of the client
    itself against `make run`): its API_URL carries the token as a Basic user name, it
    polls without worker id and without `modules`, and `local-worker-1` runs beside it on
    the same queue the whole time. local-worker-1 (which lacks `cleanup`) must skip the
    job and keep running what it can; the reference-shaped worker completes it."""
    base, worker = basic_url(stack), str(uuid.uuid4())
    drain_default_queue(stack)
    declared = requests.get(api(stack) + "/workers/local-worker-1", headers=WORKER, timeout=10).json()
    assert declared["attributes"]["disabled"] is False and "cleanup" not in declared["modules"]
    target = enqueue(stack, None, title="cleanup for the reference worker", tasks=CLEANUP)
    marker = enqueue(stack, None, title="echo for local-worker-1")  # after it: local-worker-1 takes it
    wait_until(
        lambda: job(stack, marker["job_id"])["state"] == "completed",
        timeout=30,
        interval=0.1,
        message="local-worker-1 ran the job behind the cleanup job",
    )
    assert job(stack, marker["job_id"])["worker_id"] == "local-worker-1"
    waiting = job(stack, target["job_id"])
    assert waiting["state"] == "queued" and waiting["attempt"] == 0
    assert [e["event"] for e in waiting["history"]] == ["enqueued"]

    # the client: heartbeat thread first (app/heartbeat.py: json=self.message, no timeout)
    message = {"status": "startup", "hostname": "vm", "version": "1.4.0b1", "online_at": "None"}
    assert requests.post(f"{base}/workers/{worker}", json=message, timeout=10).status_code == 200  # it sets none
    # then its loop (client.py, every request through app/tasks.connect_to_api: timeout=3)
    queue = requests.request("GET", base + "/queue", timeout=3)
    assert queue.status_code == 200 and queue.json()["attributes"]["disabled"] is False
    me = requests.request("GET", f"{base}/workers/{worker}", timeout=3)
    assert me.status_code == 200 and me.json()["attributes"]["disabled"] is False
    polled = requests.request("GET", base + "/queue/poll", timeout=3)
    assert polled.status_code == 200, polled.text
    data = polled.json()
    assert data["job_id"] == target["job_id"] and data["tasks"] == CLEANUP and data["job_title"]
    # client.py sets heartbeat.job_id/job_title, then the cleanup module replaces the message
    # (modules/cleanup.py; set_data adds hostname, version, online_at, job_id, job_title)
    message = {"status": "in_progress", "task": "cleanup", "hostname": "vm", "version": "1.4.0b1"}
    message |= {"online_at": "2026-12-06 10:02:34.194463", "job_id": data["job_id"], "job_title": data["job_title"]}
    assert requests.post(f"{base}/workers/{worker}", json=message, timeout=10).status_code == 200  # it sets none
    info = {
        "start_time": "2026-12-06 10:02:44.229254+00:00",
        "worker": "vm",
        "worker_id": worker,
        "version": "1.4.0b1",
        "completed": True,
        "end_time": "2026-12-06 10:02:44.454169+00:00",
        "runtime": "0:00:00.224939",
    }
    done = requests.request(
        "PATCH", f"{base}/jobs/{data['job_id']}/completed", timeout=3, json={"failed": False, "info": info}
    )
    assert done.status_code == 200, done.text
    final = job(stack, target["job_id"])
    assert final["state"] == "completed" and final["attempt"] == 1 and final["worker_id"] == worker
    assert final["info"] == info and final["result"]["failed"] is False
    assert [e["event"] for e in final["history"]] in (
        ["enqueued", "leased", "completed"],
        ["enqueued", "leased", "claimed", "completed"],  # a heartbeat naming the job came first
    )
    assert all(e.get("worker_id") != "local-worker-1" for e in final["history"])
    beside = requests.get(api(stack) + "/workers/local-worker-1", headers=WORKER, timeout=10).json()
    assert beside["attributes"]["disabled"] is False  # it ran beside the reference worker throughout


@pytest.mark.skipif(
    not os.environ.get("SISYPHUS_CLIENT_DIR"),
    reason="needs SISYPHUS_CLIENT_DIR (a checkout of JamesTheBard/sisyphus-client) and SISYPHUS_CLIENT_PYTHON "
    "(a Python with its dependencies); see docs/jobs.md",
)
def test_the_real_reference_client_completes_its_cleanup_job_beside_local_worker_1(stack, tmp_path):
    """The same with the client itself (`python client.py` in its checkout, as its Dockerfile
    runs it), when a checkout is at hand; nothing of it is in this repository."""
    drain_default_queue(stack)
    target = enqueue(stack, None, title="cleanup for the real reference worker", tasks=CLEANUP)
    worker = str(uuid.uuid4())
    env = {
        **os.environ,
        "API_URL": basic_url(stack),
        "HOST_UUID": worker,
        "QUEUE_POLL_INTERVAL": "1",
        "HEARTBEAT_INTERVAL": "1",
    }
    log = tmp_path / "sisyphus-client.log"
    client = subprocess.Popen(
        [os.environ.get("SISYPHUS_CLIENT_PYTHON", sys.executable), "client.py"],
        cwd=os.environ["SISYPHUS_CLIENT_DIR"],
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        final = wait_until(
            lambda: (j := job(stack, target["job_id"]))["state"] != "queued" and j["finished_at"] and j,
            timeout=30,
            interval=0.2,
            message="the reference client finished the job",
        )
        assert final["state"] == "completed" and final["attempt"] == 1 and final["worker_id"] == worker
        assert final["info"]["completed"] is True and final["info"]["worker_id"] == worker
        assert all(e.get("worker_id") != "local-worker-1" for e in final["history"])
        assert client.poll() is None  # still polling (it exits after a job it could not start)
    finally:
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=10)
        print(log.read_text(errors="replace"))


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
