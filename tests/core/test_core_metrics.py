"""Prometheus metrics: every service's /metrics parses, and none is reachable through the gateway."""

import time

import requests
from helpers import auth, wait_until
from prometheus_client.parser import text_string_to_metric_families


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_requests_are_counted_per_endpoint_in_process(client):
    assert client.get("/newapi/info").status_code == 200
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    found = families(answer.get_data(as_text=True))
    samples = [s for s in found["oc_http_requests"].samples if s.name == "oc_http_requests_total"]
    assert any(s.labels["endpoint"] == "/newapi/info" and s.labels["status"] == "200" for s in samples)
    assert "oc_http_request_duration_seconds" in found


def test_every_service_metrics_target_is_valid_prometheus_text(stack):
    # traffic first, so that the counters have samples
    requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_1"), timeout=10)
    requests.get(f"{stack.url}/newapi/queue", headers=auth("token_admin"), timeout=10)
    seen = {}
    for service in ("api", "jobs", "publish", "storage"):
        addr = stack.settings[f"{service.upper()}_ADDR"]
        requests.get(f"http://{addr}/healthz", timeout=10)  # a multiprocess family shows once it has a sample
        answer = requests.get(f"http://{addr}/metrics", timeout=10)
        assert answer.status_code == 200, (service, answer.text[:200])
        seen[service] = families(answer.text)
        assert "oc_http_requests" in seen[service] and "oc_http_request_duration_seconds" in seen[service]
    api_samples = [s for s in seen["api"]["oc_http_requests"].samples if s.name == "oc_http_requests_total"]
    assert any(s.labels["endpoint"] == "/newapi/whoami" for s in api_samples)
    jobs_gauges = {
        "oc_jobs_queue_depth",
        "oc_jobs_running",
        "oc_jobs_stranded",
        "oc_jobs_workers_live",
        "oc_jobs_documents",
    }
    assert jobs_gauges <= set(seen["jobs"])
    # counted where a worker's result or a batch arrives (the jobs service's own processes)
    assert {
        "oc_runs_finished",
        "oc_runs_duration_seconds",
        "oc_campaign_ids_ingested",
        "oc_campaign_ingest_duration_seconds",
    } <= set(seen["jobs"])
    assert {
        "oc_puzzles_live",
        "oc_puzzles_dirty",
        "oc_publish_moves_accepted",
        "oc_publish_moves_refused",
        "oc_publish_tokens_granted",
        "oc_publish_tokens_refused",
    } <= set(seen["publish"])


def test_the_public_port_answers_404_for_every_metrics_path(stack):
    for path in ("/metrics", "/_metrics", "/newapi/metrics", "/newapi/../metrics"):
        answer = requests.get(f"{stack.url}{path}", headers=auth("token_admin"), timeout=10)
        assert answer.status_code == 404, (path, answer.status_code)


def test_the_metrics_listener_takes_get_only(stack):
    answer = requests.post(f"http://{stack.settings['METRICS_ADDR']}/_metrics", timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
    assert (answer.json()["error"], answer.json()["message"]) == ("method_not_allowed", "GET /_metrics only")


def gateway_metrics(stack):
    answer = requests.get(f"http://{stack.settings['METRICS_ADDR']}/_metrics", timeout=10)
    assert answer.status_code == 200, answer.text[:200]
    assert answer.headers["Content-Type"].startswith("text/plain")
    return families(answer.text)


def sample(found, family, name, **labels):
    for s in found[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


def test_the_gateway_counts_in_lua_and_shows_it_only_on_its_internal_listener(stack, gateway):
    before = gateway_metrics(stack)
    refused = requests.post(f"{stack.url}/bucket", headers=auth("token_1"), json={"bucket": "pushe3"}, timeout=10)
    assert refused.status_code == 403
    requests.get(f"{stack.url}/dashboard/", timeout=10)
    total = "oc_gateway_requests_total"
    counted = sample(before, "oc_gateway_requests", total, route="bucket", status="4xx") + 1

    def flushed():
        # each nginx worker adds its counts to the shared dict every second
        found = gateway_metrics(stack)
        ok = sample(found, "oc_gateway_requests", total, route="bucket", status="4xx") == counted
        return ok and sample(found, "oc_gateway_requests", total, route="dashboard", status="2xx") >= 1 and found

    after = wait_until(flushed, timeout=3, message="the counts flushed")
    assert sample(after, "oc_gateway_refusals", "oc_gateway_refusals_total", status="403") >= 1
    histogram = "oc_gateway_request_duration_seconds"
    assert sample(after, histogram, f"{histogram}_count", route="bucket") >= 1
    assert sample(after, histogram, f"{histogram}_bucket", route="bucket", le="+Inf") == sample(
        after, histogram, f"{histogram}_count", route="bucket"
    )
    for name in (
        "oc_gateway_cache",
        "oc_gateway_upstream_errors",
        "oc_gateway_sse_open",
        "oc_gateway_snapshot_version",
    ):
        assert name in after
    assert sample(after, "oc_gateway_snapshot_version", "oc_gateway_snapshot_version") > 0
    # nothing else on that listener
    assert requests.get(f"http://{stack.settings['METRICS_ADDR']}/metrics", timeout=10).status_code == 404


def test_gateway_metrics_off_counts_nothing(stack, gateway):
    stack.restart_gateway(GATEWAY_METRICS="off")
    before = gateway_metrics(stack)
    for _ in range(3):
        requests.post(f"{stack.url}/bucket", headers=auth("token_1"), json={"bucket": "pushe3"}, timeout=10)
    time.sleep(1.5)  # past a flush: nothing was counted to flush
    after = gateway_metrics(stack)
    total = "oc_gateway_requests_total"
    assert sample(after, "oc_gateway_requests", total, route="bucket", status="4xx") == sample(
        before, "oc_gateway_requests", total, route="bucket", status="4xx"
    )


def test_the_jobs_service_counts_expired_leases(client, redis):
    from object_challenge.jobs import keys

    worker = auth("token_worker")
    r = client.post("/newapi/queue", json={"job_title": "t", "tasks": [{"module": "echo", "data": {}}]}, headers=worker)
    assert r.status_code == 201
    assert client.get("/newapi/queue/poll", query_string={"worker_id": "w1"}, headers=worker).status_code == 200
    for job_id in redis.zrange(keys.LEASES, 0, -1):
        redis.zadd(keys.LEASES, {job_id: 0})  # the lease runs out (no waiting for it)
    assert client.get("/newapi/queue/poll", query_string={"worker_id": "w2"}, headers=worker).status_code == 200
    found = families(client.get("/metrics").get_data(as_text=True))
    assert {"oc_jobs_leases_expired", "oc_jobs_attempts_exhausted", "oc_jobs_events_posted"} <= set(found)
    assert found["oc_jobs_leases_expired"].samples[0].value == 1


def run_samples(client):
    found = families(client.get("/metrics").get_data(as_text=True))
    out = {}
    for name in ("oc_runs_finished", "oc_runs_duration_seconds"):
        for s in found[name].samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_run_result_posted_by_a_worker_counts_its_verdict_and_duration(client):
    made = client.post(
        "/newapi/runs",
        headers=auth("token_1"),
        json={"language": "python", "files": [{"name": "main.py", "content": "print(1)\n"}]},
    )
    assert made.status_code in (201, 202), made.get_json()
    run_id = made.get_json()["run_id"]
    worker = auth("token_worker")
    poll = {"queue": "runs", "worker_id": "w-metrics", "modules": "run_program"}
    polled = client.get("/newapi/queue/poll", query_string=poll, headers=worker)
    assert polled.status_code == 200 and polled.get_json()["job_id"] == run_id, polled.get_json()
    before = run_samples(client)
    result = {"verdict": "runtime_error", "cancelled": False, "stages": [{"stage": "run", "wall_ms": 700}]}
    done = client.patch(
        f"/newapi/jobs/{run_id}/completed",
        query_string={"worker_id": "w-metrics"},
        json={"result": [result]},
        headers=worker,
    )
    assert done.status_code == 200, done.get_json()
    after = run_samples(client)
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert changed[("oc_runs_finished_total", (("language", "python"), ("verdict", "runtime_error")))] == 1
    assert changed[("oc_runs_duration_seconds_count", (("language", "python"),))] == 1
    assert abs(changed[("oc_runs_duration_seconds_sum", (("language", "python"),))] - 0.7) < 1e-9
    assert changed[("oc_runs_duration_seconds_bucket", (("language", "python"), ("le", "1.0")))] == 1
    assert ("oc_runs_duration_seconds_bucket", (("language", "python"), ("le", "0.5"))) not in changed
