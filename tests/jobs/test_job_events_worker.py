"""The worker side of job events: job["emit"] in worker processes, batching, retries,
the limit stopping the task, streamed log lines."""

import time

import requests

from object_challenge.jobs.emitter import Emitter, TaskStopped
from object_challenge.jobs.worker import ClientError, JobClient


def producer(live_server, queue=None):
    return JobClient(live_server.url, "token_1", queue=queue)


def all_events(client, job_id):
    events, after = [], ""
    while True:
        page = client.events(job_id, after=after, limit=1000)
        events += page["events"]
        if page["done"] or not page["events"]:
            return events, page
        after = page["next"]


def test_a_task_emits_every_event_once_in_order(live_server, spawn_worker):
    client = producer(live_server)
    job = client.enqueue("emits", [{"module": "emit", "data": {"count": 300}}])
    spawn_worker(live_server.url)
    done = client.wait_for(job["job_id"], timeout=30)
    assert done["state"] == "completed", done
    events, page = all_events(client, job["job_id"])
    assert [e["data"] for e in events] == [f"line {i}" for i in range(300)]
    assert {e["attempt"] for e in events} == {1} and page["done"] is True


def test_the_events_limit_stops_the_task(app, live_server, spawn_worker):
    app.config["JOB_EVENTS_MAX"] = 20
    app.extensions.pop("oc_job_events", None)
    client = producer(live_server)
    job = client.enqueue("too chatty", [{"module": "emit", "data": {"count": 100_000, "interval": 0.001}}])
    spawn_worker(live_server.url)
    done = client.wait_for(job["job_id"], timeout=30)
    assert done["state"] == "failed" and "events_limit" in done["result"]["message"], done
    assert done["events_truncated"] is True
    events, _ = all_events(client, job["job_id"])
    assert [e["data"] for e in events] == [f"line {i}" for i in range(20)]


def test_stream_logs_posts_the_tasks_log_records(live_server, spawn_worker):
    client = producer(live_server)
    job = client.enqueue("logs", [{"module": "emit", "data": {"count": 5, "log": True}}])
    spawn_worker(live_server.url, "--stream-logs")
    assert client.wait_for(job["job_id"], timeout=30)["state"] == "completed"
    events, _ = all_events(client, job["job_id"])
    assert [(e["type"], e["data"]["message"]) for e in events] == [("log", f"line {i}") for i in range(5)]
    assert events[0]["data"]["logger"] == "object_challenge.jobs.tasks"


class LosesAnswers:
    """Posts really happen, but every other answer is lost on the way back."""

    def __init__(self, client):
        self.client, self.calls, self.timeout = client, 0, client.timeout

    def post_events(self, job_id, attempt, events):
        self.calls += 1
        answer = self.client.post_events(job_id, attempt, events)
        if self.calls % 2:
            raise requests.ConnectionError("answer lost")
        return answer


def test_a_post_whose_answer_was_lost_is_retried_without_duplicates(live_server):
    client = producer(live_server, queue="lossy")
    job = client.enqueue("lossy", [{"module": "echo", "data": {}}])
    worker = JobClient(live_server.url, "token_worker", queue="lossy", worker_id="lossy-1")
    assert worker.poll()["job_id"] == job["job_id"]
    flaky = LosesAnswers(worker)
    emitter = Emitter(flaky, job["job_id"], 1)
    for i in range(50):
        emitter.emit("stdout", f"line {i}")
    emitter.close()
    assert flaky.calls >= 2
    events, _ = all_events(client, job["job_id"])
    assert [e["data"] for e in events] == [f"line {i}" for i in range(50)]


def test_after_a_409_emit_raises_task_stopped(live_server):
    client = producer(live_server, queue="stolen")
    job = client.enqueue("stolen", [{"module": "echo", "data": {}}])
    worker = JobClient(live_server.url, "token_worker", queue="stolen", worker_id="holder")
    worker.poll()
    other = JobClient(live_server.url, "token_worker", queue="stolen", worker_id="not-the-holder")
    emitter = Emitter(other, job["job_id"], 1)
    emitter.emit("stdout", "x")
    emitter.close()
    try:
        emitter.emit("stdout", "y")
    except TaskStopped as exc:
        assert "not_lease_holder" in exc.reason
    else:
        raise AssertionError("emit should raise TaskStopped")


class Throttled:
    """The gateway's rate limit: the first two posts are 429 with Retry-After."""

    timeout = 1.0

    def __init__(self, retry_after):
        self.retry_after, self.calls, self.posted = retry_after, [], []

    def post_events(self, job_id, attempt, events):
        self.calls.append(time.monotonic())
        if len(self.calls) <= 2:
            raise ClientError(429, {"error": "too_many_requests"}, retry_after=self.retry_after)
        self.posted += events
        return {"accepted": len(events), "last_id": "1-0"}


def test_event_posts_answered_429_are_retried_after_retry_after():
    throttled = Throttled(retry_after=0.5)
    emitter = Emitter(throttled, "job-1", 1)
    for i in range(3):
        emitter.emit("stdout", f"line {i}")
    emitter.close()
    assert [e["data"] for e in throttled.posted] == ["line 0", "line 1", "line 2"]
    gaps = [b - a for a, b in zip(throttled.calls, throttled.calls[1:], strict=False)]
    assert len(throttled.calls) == 3 and min(gaps) >= 0.5, gaps
