"""Issue 13 through the gateway (the `make run` stack): capabilities (?modules=), release,
delay, cancel, bulk enqueue."""

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from helpers import auth, wait_until

ROOT = Path(__file__).resolve().parents[2]
POLL = ("--poll-interval", "0.1")
USER, USER2, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")


def api(stack):
    return stack.url + "/newapi"


def fresh_queue():
    return f"gq-{uuid.uuid4().hex[:8]}"


def job_body(module="echo", title="t", **extra):
    return {"job_title": title, "tasks": [{"module": module, "data": {"x": 1}}], **extra}


def enqueue(stack, queue, body=None, headers=USER):
    r = requests.post(
        api(stack) + "/queue", params={"queue": queue}, json=body or job_body(), headers=headers, timeout=10
    )
    assert r.status_code == 201, r.text
    return r.json()


def poll(stack, queue, worker, modules=None):
    params = {"queue": queue, "worker_id": worker}
    if modules is not None:
        params["modules"] = modules
    return requests.get(api(stack) + "/queue/poll", params=params, headers=WORKER, timeout=10)


def get_job(stack, job_id, headers=USER):
    return requests.get(f"{api(stack)}/jobs/{job_id}", headers=headers, timeout=10).json()


def complete(stack, job_id, worker):
    return requests.patch(
        f"{api(stack)}/jobs/{job_id}/completed",
        params={"worker_id": worker},
        json={"failed": False, "info": {}},
        headers=WORKER,
        timeout=10,
    )


@pytest.fixture
def start_worker(stack, tmp_path):
    """`manage.py worker` processes on the stack (stopped afterwards)."""
    processes = []

    def start(queue, name):
        log = open(tmp_path / f"{name}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--queue", queue, "--worker-id", name, "--url", api(stack), *POLL],
            cwd=ROOT,
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log = tmp_path / f"{name}.log"
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        print(process.log.read_text(errors="replace"))


# -- capabilities --------------------------------------------------------------------------
def test_two_workers_with_different_modules_each_get_only_their_jobs_in_fifo_order(stack):
    queue = fresh_queue()
    jobs = [
        enqueue(stack, queue, job_body(module, title=f"{module}{i}")) for i in range(3) for module in ("ffmpeg", "mkv")
    ]
    by_module = {m: [j["job_id"] for j in jobs if j["tasks"][0]["module"] == m] for m in ("ffmpeg", "mkv")}
    got = {"ffmpeg": [], "mkv": []}
    for _ in range(3):
        for module, worker in (("mkv", "w-mkv"), ("ffmpeg", "w-ffmpeg")):
            r = poll(stack, queue, worker, f"{module},echo")
            assert r.status_code == 200, r.text
            got[module].append(r.json()["job_id"])
    assert got == by_module
    for module, worker in (("mkv", "w-mkv"), ("ffmpeg", "w-ffmpeg")):
        r = poll(stack, queue, worker, module)
        assert r.status_code == 404 and r.json()["error"] == "queue_empty"


def test_skipped_jobs_keep_their_place_and_get_queue_shows_modules_and_stranded(stack):
    queue = fresh_queue()
    other = enqueue(stack, queue, job_body("nobody-has-this"))
    mine = enqueue(stack, queue, job_body("echo"))
    requests.post(api(stack) + "/workers/gq-cap", json={"status": "idle"}, headers=WORKER, timeout=10)
    assert poll(stack, queue, "gq-cap", "echo").json()["job_id"] == mine["job_id"]
    body = requests.get(api(stack) + "/queue", params={"queue": queue}, headers=WORKER, timeout=10).json()
    assert [j["job_id"] for j in body["queue"]] == [other["job_id"]]
    assert body["queue"][0]["modules"] == ["nobody-has-this"]
    assert "stranded" in body["attributes"]
    worker = requests.get(api(stack) + "/workers/gq-cap", headers=WORKER, timeout=10).json()
    assert worker["modules"] == ["echo"]


@pytest.mark.parametrize("modules", ["a b", "a,b;c", ",".join(f"m{i}" for i in range(65)), "x" * 200, "é"])
def test_bad_module_lists_are_400(stack, modules):
    r = poll(stack, fresh_queue(), "w", modules)
    assert r.status_code == 400 and r.json()["error"] == "bad_modules"


def test_the_stack_worker_never_fails_a_job_for_a_module_it_does_not_have(stack):
    """The defect at the top of issue 13: a job for `cleanup` on the default queue with
    local-worker-1 running stays queued for a worker that can run it."""
    target = enqueue(stack, None, job_body("cleanup"))
    marker = enqueue(stack, None, job_body("echo"))  # enqueued after: local-worker-1 takes it
    wait_until(lambda: get_job(stack, marker["job_id"])["state"] == "completed", timeout=30, interval=0.1)
    got = get_job(stack, target["job_id"])
    assert got["state"] == "queued" and got["attempt"] == 0
    declared = requests.get(api(stack) + "/workers/local-worker-1", headers=WORKER, timeout=10).json()["modules"]
    assert "echo" in declared and "cleanup" not in declared
    # a worker that can run it (here: one that declares nothing, as the reference worker) gets it
    r = poll(stack, "queue", "gq-ref", "cleanup")
    assert r.status_code == 200 and r.json()["job_id"] == target["job_id"]
    assert complete(stack, target["job_id"], "gq-ref").json()["state"] == "completed"


# -- release and delay -----------------------------------------------------------------------
def test_release_puts_the_job_back_and_it_is_not_handed_out_before_retry_after(stack):
    queue = fresh_queue()
    target = enqueue(stack, queue)
    assert poll(stack, queue, "gq-rel").json()["job_id"] == target["job_id"]
    r = requests.post(
        f"{api(stack)}/jobs/{target['job_id']}/release",
        params={"worker_id": "someone-else"},
        json={"reason": "busy"},
        headers=WORKER,
        timeout=10,
    )
    assert r.status_code == 409 and r.json()["error"] == "not_lease_holder"
    r = requests.post(
        f"{api(stack)}/jobs/{target['job_id']}/release",
        params={"worker_id": "gq-rel"},
        json={"reason": "busy", "retry_after_s": 1},
        headers=WORKER,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["state"] == "queued" and r.json()["not_before"]
    assert poll(stack, queue, "gq-rel2").status_code == 404
    again = wait_until(lambda: (r := poll(stack, queue, "gq-rel2")).status_code == 200 and r.json(), timeout=5)
    assert again["job_id"] == target["job_id"] and again["attempt"] == 2
    history = [e["event"] for e in get_job(stack, target["job_id"])["history"]]
    assert "released" in history or "requeued" in history
    r = requests.post(
        f"{api(stack)}/jobs/{target['job_id']}/release", json={"retry_after_s": 4000}, headers=WORKER, timeout=10
    )
    assert r.status_code == 400


def test_release_at_the_last_attempt_fails_the_job(stack):
    queue = fresh_queue()
    target = enqueue(stack, queue, job_body(max_attempts=1))
    poll(stack, queue, "gq-last")
    r = requests.post(
        f"{api(stack)}/jobs/{target['job_id']}/release",
        params={"worker_id": "gq-last"},
        json={"reason": "cannot"},
        headers=WORKER,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["state"] == "failed"
    r = requests.post(
        f"{api(stack)}/jobs/{target['job_id']}/release", params={"worker_id": "gq-last"}, headers=WORKER, timeout=10
    )
    assert r.status_code == 409 and r.json()["error"] == "job_not_running"


def test_delayed_job_is_queued_but_not_handed_out_before_its_time(stack):
    queue = fresh_queue()
    target = enqueue(stack, queue, job_body(delay_s=1))
    assert target["state"] == "queued" and target["not_before"]
    assert get_job(stack, target["job_id"])["not_before"] == target["not_before"]
    assert poll(stack, queue, "gq-delay").status_code == 404
    got = wait_until(lambda: (r := poll(stack, queue, "gq-delay")).status_code == 200 and r.json(), timeout=5)
    assert got["job_id"] == target["job_id"]
    for bad in (-1, 86401, "soon", True):
        r = requests.post(api(stack) + "/queue", json=job_body(delay_s=bad), headers=USER, timeout=10)
        assert r.status_code == 400, bad


# -- cancel --------------------------------------------------------------------------------
def test_cancel_a_queued_job_at_once_and_a_finished_one_is_409(stack):
    queue = fresh_queue()
    target = enqueue(stack, queue)
    r = requests.post(f"{api(stack)}/jobs/{target['job_id']}/cancel", headers=USER2, timeout=10)
    assert r.status_code == 404  # another user's job
    r = requests.post(f"{api(stack)}/jobs/{target['job_id']}/cancel", headers=USER, timeout=10)
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    assert poll(stack, queue, "gq-c").status_code == 404
    assert get_job(stack, target["job_id"])["state"] == "cancelled"
    r = requests.post(f"{api(stack)}/jobs/{target['job_id']}/cancel", headers=ADMIN, timeout=10)
    assert r.status_code == 409 and r.json()["error"] == "job_finished"
    r = requests.post(f"{api(stack)}/jobs/{uuid.uuid4()}/cancel", headers=ADMIN, timeout=10)
    assert r.status_code == 404


def test_cancel_of_a_running_job_reaches_its_holder_through_the_heartbeat(stack):
    queue = fresh_queue()
    target = enqueue(stack, queue)
    poll(stack, queue, "gq-hb")
    r = requests.post(f"{api(stack)}/jobs/{target['job_id']}/cancel", headers=USER, timeout=10)
    assert r.status_code == 202 and r.json()["state"] == "running" and r.json()["cancel_requested"] is True
    beat = requests.post(api(stack) + "/workers/gq-hb", json={"status": "busy"}, headers=WORKER, timeout=10).json()
    assert beat["cancel"] == [target["job_id"]]
    assert complete(stack, target["job_id"], "gq-hb").json()["state"] == "cancelled"


def test_a_cancelled_running_job_on_the_built_in_worker_ends_cancelled_within_3_s(stack, start_worker):
    queue = fresh_queue()
    target = enqueue(stack, queue, {"job_title": "long", "tasks": [{"module": "sleep", "data": {"seconds": 60}}]})
    start_worker(queue, "gq-cancel")
    wait_until(lambda: get_job(stack, target["job_id"])["state"] == "running", timeout=30, interval=0.1)
    r = requests.post(f"{api(stack)}/jobs/{target['job_id']}/cancel", headers=USER, timeout=10)
    assert r.status_code == 202
    wait_until(lambda: get_job(stack, target["job_id"])["state"] == "cancelled", timeout=3, interval=0.05)


# -- bulk enqueue ----------------------------------------------------------------------------
def test_bulk_enqueue_many_jobs_in_one_request(stack):
    queue = fresh_queue()
    r = requests.post(
        api(stack) + "/queue",
        params={"queue": queue},
        json={"jobs": [job_body(title=f"b{i}") for i in range(1000)]},
        headers=USER,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 1000 and len(set(body["job_ids"])) == 1000
    listed = requests.get(api(stack) + "/queue", params={"queue": queue, "limit": 3}, headers=WORKER, timeout=10).json()
    assert listed["entries"] == 1000 and [j["job_id"] for j in listed["queue"]] == body["job_ids"][:3]


def test_bulk_enqueue_with_one_bad_job_enqueues_nothing(stack):
    queue = fresh_queue()
    jobs = [job_body(title=f"b{i}") for i in range(5)]
    jobs[3] = {"job_title": "bad", "tasks": []}
    r = requests.post(api(stack) + "/queue", params={"queue": queue}, json={"jobs": jobs}, headers=USER, timeout=10)
    assert r.status_code == 400 and r.json()["index"] == 3
    listed = requests.get(api(stack) + "/queue", params={"queue": queue}, headers=WORKER, timeout=10).json()
    assert listed["entries"] == 0
    for bad in ([], [job_body()] * 1001, "x"):
        r = requests.post(api(stack) + "/queue", params={"queue": queue}, json={"jobs": bad}, headers=USER, timeout=30)
        assert r.status_code == 400, r.text


# -- bad input is a 400, never a 500 (issue 17) -------------------------------------------------
@pytest.mark.parametrize("limit", [str(2**63), str(2**64 + 5), "-1", "1e3", "abc", "100001", "٣"])
def test_queue_limit_out_of_range_is_400(stack, limit):
    r = requests.get(api(stack) + "/queue", params={"limit": limit}, headers=WORKER, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_limit"


@pytest.mark.parametrize(
    "data",
    [
        '{"n": 9223372036854775808}',
        '{"n": -9223372036854775809}',
        '{"a\\u0000b": 1}',
        '{"$where": 1}',
        '{"n": NaN}',
        '{"n": Infinity}',
        "[" * 3000 + "]" * 3000,
        "[" * 65 + "]" * 65,
    ],
)
def test_unstorable_job_data_is_400(stack, data):
    body = '{"job_title": "t", "tasks": [{"module": "echo", "data": ' + data + "}]}"
    r = requests.post(
        api(stack) + "/queue", data=body, headers={**USER, "Content-Type": "application/json"}, timeout=10
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("bad_job", "bad_json")


def test_a_user_lists_their_own_jobs_paginated(stack):
    mine = [enqueue(stack, fresh_queue(), job_body(title=f"mine{i}"))["job_id"] for i in range(3)]
    theirs = enqueue(stack, fresh_queue(), headers=USER2)["job_id"]

    def listed():
        r = requests.get(api(stack) + "/jobs", params={"mine": 1, "limit": 100}, headers=USER, timeout=10)
        assert r.status_code == 200, r.text
        ids = [j["job_id"] for j in r.json()["jobs"]]
        return set(mine) <= set(ids) and ids

    ids = wait_until(listed, timeout=30, interval=0.2, message="the recorder wrote the jobs")
    assert theirs not in ids
    page = requests.get(api(stack) + "/jobs", params={"mine": 1, "limit": 2}, headers=USER, timeout=10).json()
    assert page["count"] == 2 and page["next_offset"] == 2 and page["total"] >= 3
    bad = requests.get(api(stack) + "/jobs", params={"mine": 1, "limit": 0}, headers=USER, timeout=10)
    assert bad.status_code == 400
