"""The worker program against a live server: tasks, crashes, SIGTERM, the CLI."""

import signal

from helpers import wait_until

from object_challenge.jobs.worker import ClientError, JobClient


def producer(live_server, queue=None):
    return JobClient(live_server.url, "token_1", queue=queue)


def test_worker_runs_tasks_in_order_and_completes_with_their_results(live_server, spawn_worker):
    job = producer(live_server).enqueue(
        "two tasks", [{"module": "echo", "data": {"a": "ü"}}, {"module": "sleep", "data": {"seconds": 0.1}}]
    )
    spawn_worker(live_server.url)
    done = producer(live_server).wait_for(job["job_id"], timeout=20)
    assert done["state"] == "completed" and done["attempt"] == 1
    assert done["result"]["result"] == [{"a": "ü"}, {"slept": 0.1}]
    assert done["worker_id"] == "test-worker-1" and done["info"]["completed"] is True


def test_a_task_that_raises_fails_the_job_with_its_message(live_server, spawn_worker):
    client = producer(live_server)
    failing = client.enqueue("boom", [{"module": "fail", "data": {"message": "disk full"}}])
    unknown = client.enqueue("nobody", [{"module": "no-such-module", "data": {}}])
    spawn_worker(live_server.url)
    failed = client.wait_for(failing["job_id"], timeout=20)
    assert failed["state"] == "failed" and "disk full" in failed["result"]["message"]
    # a job for a module the worker does not have is never handed to it (issue 13)
    assert client.job(unknown["job_id"])["state"] == "queued"
    assert client.job(unknown["job_id"])["attempt"] == 0


def test_killed_worker_mid_job_completes_on_another_worker_with_attempt_2(live_server, spawn_worker):
    client = producer(live_server)
    job = client.enqueue("survives a crash", [{"module": "sleep", "data": {"seconds": 2}}])
    first = spawn_worker(live_server.url)
    wait_until(
        lambda: client.job(job["job_id"])["worker_id"] == first.worker_id,
        timeout=20,
        message="first worker took the job",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = spawn_worker(live_server.url)
    done = client.wait_for(job["job_id"], timeout=30)
    assert done["state"] == "completed" and done["attempt"] == 2
    assert done["worker_id"] == second.worker_id
    assert [e["event"] for e in done["history"]] == ["enqueued", "leased", "requeued", "leased", "completed"]


def test_heartbeats_keep_a_job_longer_than_its_lease_on_attempt_1(live_server, spawn_worker, app):
    client = producer(live_server)
    seconds = app.config["JOB_LEASE_SECONDS"] * 3
    job = client.enqueue("long", [{"module": "sleep", "data": {"seconds": seconds}}])
    spawn_worker(live_server.url)
    done = client.wait_for(job["job_id"], timeout=30)
    assert done["state"] == "completed" and done["attempt"] == 1


def test_sigterm_finishes_the_running_job_then_exits_cleanly(live_server, spawn_worker):
    client = producer(live_server)
    job = client.enqueue("finish me", [{"module": "sleep", "data": {"seconds": 1.5}}])
    queued_after = client.enqueue("not taken", [{"module": "echo", "data": 1}])
    worker = spawn_worker(live_server.url)
    wait_until(lambda: client.job(job["job_id"])["state"] == "running", timeout=20, message="job running")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    done = client.job(job["job_id"])
    assert done["state"] == "completed" and done["attempt"] == 1
    assert client.job(queued_after["job_id"])["state"] == "queued"


def test_disabled_worker_takes_nothing_until_enabled(live_server, spawn_worker):
    admin = JobClient(live_server.url, "token_admin")
    admin._call("PATCH", "/workers/test-worker-1", json={"disabled": True})
    client = producer(live_server)
    job = client.enqueue("wait", [{"module": "echo", "data": 1}])
    worker = spawn_worker(live_server.url, "--heartbeat-interval", "0.1")
    wait_until(lambda: b"disabled by the server" in worker.log.read_bytes(), timeout=20, message="worker refused")
    assert client.job(job["job_id"])["state"] == "queued"
    admin._call("PATCH", "/workers/test-worker-1", json={"disabled": False})
    assert client.wait_for(job["job_id"], timeout=30)["state"] == "completed"


def test_job_client_raises_client_error_with_the_json_error(live_server):
    try:
        JobClient(live_server.url, "token_1").job("nope")
    except ClientError as exc:
        assert exc.status == 404 and exc.body["error"] == "job_not_found"
    else:
        raise AssertionError("no error")


def test_manage_py_worker_burst_drains_the_queue(live_server, runner):
    client = producer(live_server, queue="cli")
    jobs = [client.enqueue(f"j{i}", [{"module": "echo", "data": i}]) for i in range(3)]
    result = runner.invoke(
        args=[
            "worker",
            "--url",
            live_server.url,
            "--queue",
            "cli",
            "--burst",
            "--poll-interval",
            "0.05",
            "--worker-id",
            "cli-worker",
        ]
    )
    assert result.exit_code == 0, result.output
    assert all(client.job(j["job_id"])["state"] == "completed" for j in jobs)


def test_completions_are_retried_after_429_honouring_retry_after_while_the_lease_lasts():
    import time

    import pytest

    from object_challenge.jobs.worker import ClientError, retrying

    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ClientError(429, {"error": "too_many_requests"}, retry_after=0.2)
        return "saved"

    assert retrying(flaky, time.monotonic() + 5) == "saved"
    assert len(calls) == 3 and calls[1] - calls[0] >= 0.2 and calls[2] - calls[1] >= 0.2
    with pytest.raises(ClientError):  # the lease would end before the retry: give up
        retrying(lambda: (_ for _ in ()).throw(ClientError(503, {}, retry_after=10)), time.monotonic() + 1)
    with pytest.raises(ClientError):  # a refusal is not retried
        retrying(lambda: (_ for _ in ()).throw(ClientError(409, {})), time.monotonic() + 5)
