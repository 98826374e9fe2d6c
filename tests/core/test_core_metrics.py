"""Prometheus metrics: every service's /metrics parses, and none is reachable through the gateway."""

import requests
from helpers import auth
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
    assert {"oc_jobs_queue_depth", "oc_jobs_running", "oc_jobs_workers_live", "oc_jobs_documents"} <= set(seen["jobs"])
    assert {"oc_puzzles_live", "oc_puzzles_dirty"} <= set(seen["publish"])


def test_the_public_port_answers_404_for_every_metrics_path(stack):
    for path in ("/metrics", "/_metrics", "/newapi/metrics", "/newapi/../metrics"):
        answer = requests.get(f"{stack.url}{path}", headers=auth("token_admin"), timeout=10)
        assert answer.status_code == 404, (path, answer.status_code)
