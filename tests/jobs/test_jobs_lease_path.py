"""The gateway answers poll and completion itself (lua/oc/job_lease.lua, jobs/lease_path.py):
the same documents as the jobs service, the same decisions, and the service for
everything the gateway leaves to it."""

import json
import uuid
from pathlib import Path

import pytest
import requests
from gw import log_entry, redis_of, rid
from helpers import auth, wait_until

from object_challenge.jobs import keys
from object_challenge.jobs.queue import answer_template
from object_challenge.jobs.service import check_data

USER, WORKER = auth("token_1"), auth("token_worker")
CASES = json.loads((Path(__file__).resolve().parents[1] / "cases" / "job_completions.json").read_text())
MOVING = ("job_id", "added", "at", "lease_expires_at", "finished_at")


def api(stack):
    return stack.url + "/newapi"


@pytest.fixture
def published(stack):
    r = redis_of(stack)
    wait_until(lambda: r.exists(keys.GATEWAY), timeout=10, message="the scheduler to publish oc:jobs:gateway")
    return r


def enqueue(stack, queue, data=None, module="echo"):
    body = {"job_title": "lease path", "tasks": [{"module": module, "data": data or {"x": 1, "f": 0.5}}]}
    r = requests.post(api(stack) + "/queue", params={"queue": queue}, json=body, headers=USER, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["job_id"]


def poll(stack, queue, worker, plain=False, request_id=None):
    # a repeated worker_id is one the gateway leaves to the service (Flask takes the first)
    params = [("queue", queue), ("worker_id", worker)] + ([("worker_id", worker)] if plain else [])
    headers = {**WORKER, "X-Request-Id": request_id} if request_id else WORKER
    return requests.get(api(stack) + "/queue/poll", params=params, headers=headers, timeout=10)


def complete(stack, job_id, worker, body, plain=False, request_id=None):
    params = [("worker_id", worker)] + ([("worker_id", worker)] if plain else [])
    headers = {**WORKER, "Content-Type": "application/json"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return requests.patch(
        f"{api(stack)}/jobs/{job_id}/completed", params=params, data=body.encode(), headers=headers, timeout=10
    )


def steady(doc):
    """The document without what differs between two jobs made the same way."""
    if isinstance(doc, dict):
        return {k: steady(v) for k, v in doc.items() if k not in MOVING}
    if isinstance(doc, list):
        return [steady(v) for v in doc]
    return doc


def canonical(value):
    """JSON text with sorted keys: 1.0 and 1 stay apart."""
    return json.dumps(value, sort_keys=True)


def upstream(stack, request_id):
    return log_entry(stack, request_id).get("upstream") or ""


def test_poll_and_completion_answered_by_the_gateway_match_the_service(stack, published):
    queue = f"lp-{uuid.uuid4().hex[:8]}"
    data = {"n": 12345678901234, "f": 0.25, "s": "caf\u00e9 / \u2603", "l": [1, [2, {}]], "e": {}}
    first, second = enqueue(stack, queue, data), enqueue(stack, queue, data)
    fast_rid, plain_rid = rid("lease"), rid("lease")
    fast = poll(stack, queue, "lp-w", request_id=fast_rid)
    plain = poll(stack, queue, "lp-w", plain=True, request_id=plain_rid)
    assert fast.status_code == plain.status_code == 200
    assert upstream(stack, fast_rid) == ""  # no service was asked
    assert upstream(stack, plain_rid) == stack.settings["JOBS_ADDR"]
    assert fast.json()["job_id"] == first and plain.json()["job_id"] == second
    assert steady(fast.json()) == steady(plain.json())
    assert fast.json()["tasks"][0]["data"] == data and fast.json()["lease_seconds"] == plain.json()["lease_seconds"]

    body = json.dumps({"failed": False, "info": {"worker_id": "lp-w", "rows": [1, 2.5]}, "result": {"ok": True}})
    fast_rid, plain_rid = rid("done"), rid("done")
    done_fast = complete(stack, first, "lp-w", body, request_id=fast_rid)
    done_plain = complete(stack, second, "lp-w", body, plain=True, request_id=plain_rid)
    assert done_fast.status_code == done_plain.status_code == 200
    assert upstream(stack, fast_rid) == "" and upstream(stack, plain_rid) == stack.settings["JOBS_ADDR"]
    assert steady(done_fast.json()) == steady(done_plain.json())
    assert done_fast.json()["state"] == "completed" and done_fast.json()["finished_at"]
    # and the service reads back what the gateway stored
    read = requests.get(f"{api(stack)}/jobs/{first}", headers=USER, timeout=10).json()
    assert steady(read)["result"] == steady(done_fast.json())["result"]
    assert read["history"][-1]["event"] == "completed"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_completion_body_is_stored_as_the_service_stores_it(stack, published, case):
    """tests/cases/job_completions.json: the gateway takes only what the service would take,
    and stores it as the service would (types too: 1.0 stays a float); `gateway` says
    whether the gateway decides it itself (the plain subset) or hands it to the service."""
    queue = f"lc-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, queue)
    assert poll(stack, queue, "lc-w").status_code == 200
    request_id = rid("case")
    answer = complete(stack, job_id, "lc-w", case["body"], request_id=request_id)
    assert (upstream(stack, request_id) == "") == case["gateway"]
    try:  # the service reads an empty body and `null` as {}
        body = (json.loads(case["body"]) if case["body"].strip() else None) or {}
    except ValueError:
        body = "not json"
    if not isinstance(body, dict) or not isinstance(body.get("failed", False), bool):
        assert answer.status_code == 400, answer.text
        return
    expected = {k: body.get(k) for k in ("failed", "info", "result", "message")}
    expected["failed"] = body.get("failed", False)
    if check_data(expected):
        assert answer.status_code == 400, answer.text
        return
    assert answer.status_code == 200, answer.text
    stored = requests.get(f"{api(stack)}/jobs/{job_id}", headers=USER, timeout=10).json()["result"]
    assert canonical(stored) == canonical(expected)  # from Redis, or MongoDB once recorded
    assert canonical(answer.json()["result"]) == canonical(expected)


def test_the_completion_of_a_hooked_module_goes_to_the_service(stack, published):
    queue = f"lh-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, queue, module="run_program", data={"language": "python"})
    assert poll(stack, queue, "lh-w").status_code == 200
    request_id = rid("hook")
    answer = complete(stack, job_id, "lh-w", json.dumps({"failed": False, "info": {}}), request_id=request_id)
    assert answer.status_code == 200, answer.text
    assert upstream(stack, request_id) == stack.settings["JOBS_ADDR"]


def test_a_job_without_a_template_is_answered_from_the_service(stack, published):
    """A job enqueued before the gateway answered polls (no `tpl`): leased here, read back there."""
    queue = f"lt-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, queue)
    published.hdel(keys.job(job_id), "tpl")
    answer = poll(stack, queue, "lt-w")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["job_id"] == job_id and doc["state"] == "running" and doc["worker_id"] == "lt-w"
    assert doc["lease_seconds"] == stack.settings["JOB_LEASE_SECONDS"]
    request_id = rid("notpl")
    done = complete(stack, job_id, "lt-w", "{}", request_id=request_id)
    assert done.status_code == 200 and done.json()["state"] == "completed"
    assert upstream(stack, request_id) == stack.settings["JOBS_ADDR"]


def test_refusals_are_the_services(stack, published):
    queue = f"lr-{uuid.uuid4().hex[:8]}"
    empty = poll(stack, queue, "lr-w")
    assert empty.status_code == 404 and empty.json()["error"] == "queue_empty"
    job_id = enqueue(stack, queue)
    assert poll(stack, queue, "lr-w").status_code == 200
    other = complete(stack, job_id, "lr-other", "{}")
    assert other.status_code == 409 and other.json()["error"] == "not_lease_holder"
    assert complete(stack, job_id, "lr-w", "{}").status_code == 200
    again = complete(stack, job_id, "lr-w", "{}")
    assert again.status_code == 409 and again.json()["error"] == "job_not_running"
    bad = poll(stack, "bad queue!", "lr-w")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_queue"
    user = requests.get(api(stack) + "/queue/poll", params={"queue": queue}, headers=USER, timeout=10)
    assert user.status_code == 403


def test_the_gateway_follows_a_script_flush(stack, published):
    queue = f"lf-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, queue)
    published.script_flush()  # as after a Redis restart: NOSCRIPT, so the service answers
    assert poll(stack, queue, "lf-w").json()["job_id"] == job_id
    assert complete(stack, job_id, "lf-w", "{}").status_code == 200
    wait_until(
        lambda: all(published.script_exists(*published.hmget(keys.GATEWAY, "poll", "complete"))),
        timeout=10,
        message="the scheduler to load the scripts again",
    )


def test_the_template_holds_the_document():
    doc = {"job_id": "j", "tasks": [{"module": "m", "data": {"x": [1.0, "\x00"]}}], "state": "queued", "attempt": 0}
    doc.update({"result": None, "info": None, "finished_at": None, "history": [{"event": "enqueued", "at": "t"}]})
    head, final, hist = answer_template(doc).split("\x00")
    rebuilt = json.loads(head + ", " + final + ', "history": [' + hist + "]}")
    assert rebuilt == {k: v for k, v in doc.items() if k not in ("state", "attempt")}


def test_a_head_poll_leases_nothing(stack, published):
    """HEAD would run the GET view and drop the leased job's answer: 405, the job stays queued."""
    queue = f"lh-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(stack, queue)
    head = requests.head(api(stack) + "/queue/poll", params={"queue": queue, "worker_id": "hd-w"}, headers=WORKER)
    assert head.status_code == 405 and head.headers["Allow"] == "GET"
    assert poll(stack, queue, "hd-w").json()["job_id"] == job_id
