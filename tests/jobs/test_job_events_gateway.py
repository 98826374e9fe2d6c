"""Job events through the real gateway (make run's stack): the live stream served by the
gateway's Lua from Redis pub/sub, resumable, no gap between catch-up and live; both
attempts' events; retries; limits; reading after the job moved to MongoDB; who may read."""

import http.client
import json
import threading
import uuid

import requests
from gw import redis_of
from helpers import auth, wait_until

USER, USER2, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")


def api(stack):
    return stack.url + "/newapi"


def running_job(stack, worker):
    """A job on a queue of its own (the stack's worker polls only the default one), leased to ``worker``."""
    queue = f"ev-{uuid.uuid4().hex[:8]}"
    r = requests.post(
        api(stack) + "/queue",
        params={"queue": queue},
        json={"job_title": "events", "tasks": [{"module": "echo", "data": {}}]},
        headers=USER,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    polled = requests.get(
        api(stack) + "/queue/poll", params={"queue": queue, "worker_id": worker}, headers=WORKER, timeout=10
    )
    assert polled.status_code == 200, polled.text
    return polled.json() | {"queue": queue}


def post(stack, job_id, events, attempt=1, worker="w1"):
    return requests.post(
        f"{api(stack)}/jobs/{job_id}/events",
        params={"worker_id": worker},
        json={"attempt": attempt, "events": events},
        headers=WORKER,
        timeout=10,
    )


def lines(start, stop):
    return [{"type": "stdout", "data": f"line {i}", "seq": i} for i in range(start, stop)]


def complete(stack, job_id, worker="w1"):
    r = requests.patch(
        f"{api(stack)}/jobs/{job_id}/completed",
        params={"worker_id": worker},
        json={"failed": False},
        headers=WORKER,
        timeout=10,
    )
    assert r.status_code == 200, r.text


class Stream:
    """An SSE connection through the gateway; ``messages()`` yields parsed messages."""

    def __init__(self, stack, job_id, token="token_1", last_event_id=None, query=""):
        host, port = stack.url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=20)
        headers = auth(token)
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", f"/newapi/jobs/{job_id}/events/stream{query}", headers=headers)
        self.response = self.conn.getresponse()
        self.comments = 0

    def messages(self):
        fields = {}
        while True:
            line = self.response.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    yield fields
                fields = {}
            elif line.startswith(":"):
                self.comments += 1
            else:
                name, _, value = line.partition(": ")
                fields[name] = value

    def until_end(self):
        events, end = [], None
        for message in self.messages():
            if message.get("event") == "end":
                end = json.loads(message["data"])
                break
            events.append((message["id"], json.loads(message["data"])))
        return events, end

    def close(self):
        self.conn.close()


def test_a_watcher_joining_mid_job_gets_every_later_event_once_then_end(stack):
    job = running_job(stack, "w1")
    job_id = job["job_id"]
    first = post(stack, job_id, lines(0, 10)).json()
    assert first["last_id"] == "001-000000009"
    writer_done = threading.Event()

    def writer():  # events keep coming while the watcher connects
        for start in range(10, 200, 5):
            assert post(stack, job_id, lines(start, start + 5)).status_code == 200
        writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    stream = Stream(stack, job_id, last_event_id="001-000000004")
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream"
        assert stream.response.getheader("Cache-Control") == "no-store"
        thread.join(30)
        assert writer_done.is_set()
        complete(stack, job_id)
        events, end = stream.until_end()
    finally:
        stream.close()
    ids = [i for i, _ in events]
    assert ids == [f"001-{n:09d}" for n in range(5, 200)], ids[:20]
    assert [e["data"] for _, e in events] == [f"line {n}" for n in range(5, 200)]
    assert all(e["id"] == i and e["attempt"] == 1 for i, e in events)
    assert end["state"] == "completed" and end["job_id"] == job_id


def test_after_in_the_query_resumes_too_and_a_finished_stream_ends_at_once(stack):
    job = running_job(stack, "w1")
    post(stack, job["job_id"], lines(0, 5))
    complete(stack, job["job_id"])
    stream = Stream(stack, job["job_id"], query="?after=001-000000002")
    try:
        events, end = stream.until_end()
    finally:
        stream.close()
    assert [i for i, _ in events] == ["001-000000003", "001-000000004"] and end["state"] == "completed"


def test_a_lost_lease_and_a_second_run_keep_both_attempts_events(stack):
    job = running_job(stack, "w1")
    job_id = job["job_id"]
    post(stack, job_id, lines(0, 3), worker="w1")
    stream = Stream(stack, job_id)  # watches from the start, across both attempts

    def second_delivery():  # the scheduler requeues the expired lease; w2 polls it
        r = requests.get(
            api(stack) + "/queue/poll", params={"queue": job["queue"], "worker_id": "w2"}, headers=WORKER, timeout=10
        )
        return r.json() if r.status_code == 200 else None

    try:
        again = wait_until(second_delivery, timeout=float(stack.env["JOB_LEASE_SECONDS"]) + 10, interval=0.3)
        assert again["job_id"] == job_id and again["attempt"] == 2
        late = post(stack, job_id, lines(3, 4), worker="w1")  # the first worker, too late
        assert late.status_code == 409 and late.json()["error"] == "not_lease_holder"
        post(stack, job_id, lines(0, 2), attempt=2, worker="w2")
        complete(stack, job_id, worker="w2")
        events, end = stream.until_end()
    finally:
        stream.close()
    tagged = [(e["attempt"], e["data"]) for _, e in events]
    assert tagged == [(1, "line 0"), (1, "line 1"), (1, "line 2"), (2, "line 0"), (2, "line 1")]
    assert end["state"] == "completed" and end["attempt"] == 2
    read = requests.get(f"{api(stack)}/jobs/{job_id}/events", headers=USER, timeout=10).json()
    assert [(e["attempt"], e["data"]) for e in read["events"]] == tagged and read["done"] is True


def test_a_retried_post_is_not_stored_twice(stack):
    job = running_job(stack, "w1")
    assert post(stack, job["job_id"], lines(0, 4)).json()["accepted"] == 4
    again = post(stack, job["job_id"], lines(0, 4))
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 4, "last_id": "001-000000003"}
    read = requests.get(f"{api(stack)}/jobs/{job['job_id']}/events", headers=USER, timeout=10).json()
    assert [e["data"] for e in read["events"]] == [f"line {i}" for i in range(4)]


def test_past_the_count_limit_posts_are_413_and_the_job_is_truncated(stack):
    job = running_job(stack, "w1")
    limit = 10_000  # JOB_EVENTS_MAX's default
    for start in range(0, limit, 1000):
        batch = [{"type": "log", "data": 1, "seq": i} for i in range(start, start + 1000)]
        assert post(stack, job["job_id"], batch).status_code == 200
    over = post(stack, job["job_id"], [{"type": "log", "data": 1, "seq": limit}])
    assert over.status_code == 413 and over.json()["error"] == "events_limit" and over.json()["request_id"]
    got = requests.get(f"{api(stack)}/jobs/{job['job_id']}", headers=USER, timeout=10).json()
    assert got["events_truncated"] is True
    complete(stack, job["job_id"])
    stream = Stream(stack, job["job_id"])  # the whole catch-up (about 1 MB) in one subrequest
    try:
        events, end = stream.until_end()
    finally:
        stream.close()
    assert len(events) == limit and events[-1][0] == f"001-{limit - 1:09d}"
    assert end["events_truncated"] is True


def test_events_are_read_from_mongodb_after_the_job_finished(stack):
    job = running_job(stack, "w1")
    job_id = job["job_id"]
    post(stack, job_id, lines(0, 120))
    complete(stack, job_id)
    redis = redis_of(stack)
    wait_until(
        lambda: not redis.exists(f"oc:jobs:events:{job_id}"), timeout=10, message="the scheduler archived the events"
    )
    page = requests.get(f"{api(stack)}/jobs/{job_id}/events", params={"limit": 100}, headers=USER, timeout=10).json()
    assert len(page["events"]) == 100 and page["done"] is False and page["state"] == "completed"
    rest = requests.get(
        f"{api(stack)}/jobs/{job_id}/events", params={"after": page["next"]}, headers=USER, timeout=10
    ).json()
    assert [e["data"] for e in rest["events"]] == [f"line {i}" for i in range(100, 120)] and rest["done"] is True
    stream = Stream(stack, job_id, last_event_id="001-000000109")
    try:
        events, end = stream.until_end()
    finally:
        stream.close()
    assert [e["data"] for _, e in events] == [f"line {i}" for i in range(110, 120)]
    assert end["state"] == "completed"


def test_other_users_get_404_and_no_token_401(stack):
    job = running_job(stack, "w1")
    post(stack, job["job_id"], lines(0, 2))
    for path in ("/events", "/events/stream"):
        other = requests.get(f"{api(stack)}/jobs/{job['job_id']}{path}", headers=USER2, timeout=10)
        assert other.status_code == 404 and other.json()["error"] == "job_not_found", (path, other.text)
        assert other.json()["request_id"] == other.headers["X-Request-Id"]
        nobody = requests.get(f"{api(stack)}/jobs/{job['job_id']}{path}", timeout=10)
        assert nobody.status_code == 401, (path, nobody.text)
    unknown = requests.get(f"{api(stack)}/jobs/{uuid.uuid4()}/events/stream", headers=ADMIN, timeout=10)
    assert unknown.status_code == 404
    for token in ("token_worker", "token_admin"):
        stream = Stream(stack, job["job_id"], token=token)
        try:
            first = next(stream.messages())
        finally:
            stream.close()
        assert first["id"] == "001-000000000"
    complete(stack, job["job_id"])


def test_a_stream_opened_before_any_event_gets_it_live(stack):
    """A stream opened before any event delivers the first one live."""
    job = running_job(stack, "w1")
    stream = Stream(stack, job["job_id"])
    try:
        assert stream.response.status == 200
        post(stack, job["job_id"], lines(0, 1))
        message = next(stream.messages())
        assert message["id"] == "001-000000000"
    finally:
        stream.close()
    complete(stack, job["job_id"])
