"""Request limits: per user, per IP for anonymous traffic, 429 with Retry-After."""

import requests
from gw import is_json_error
from helpers import auth

LOW = dict(RATE_LIMIT_USER_RPS=0.5, RATE_LIMIT_USER_BURST=5, RATE_LIMIT_IP_RPS=0.5, RATE_LIMIT_IP_BURST=3)


def burst(stack, n, token="token_1", path="/newapi/whoami"):
    headers = auth(token) if token else {}
    return [requests.get(stack.url + path, headers=headers, timeout=5) for _ in range(n)]


def test_user_over_the_limit_gets_429_with_retry_after(stack, gateway):
    stack.restart_gateway(**LOW)
    answers = burst(stack, 7)
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    refused = answers[-1]
    is_json_error(refused, 429, "too_many_requests")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "5"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 1


def test_users_are_limited_separately(stack, gateway):
    stack.restart_gateway(**LOW)
    burst(stack, 6, "token_1")
    assert burst(stack, 1, "token_2")[0].status_code == 200


def test_bucket_creation_counts_against_the_user(stack, gateway):
    stack.restart_gateway(**LOW)
    burst(stack, 5, "token_3")
    answer = requests.post(f"{stack.url}/bucket", json={"bucket": "foo-limited"}, headers=auth("token_3"), timeout=5)
    is_json_error(answer, 429)


def test_anonymous_traffic_is_limited_per_ip(stack, gateway):
    stack.restart_gateway(**LOW)
    answers = burst(stack, 4, None, "/newapi/info")
    assert [a.status_code for a in answers] == [200] * 3 + [429]
    is_json_error(requests.post(f"{stack.url}/bucket", json={}, timeout=5), 429)


def test_rate_limits_off_switches_them_off(stack, gateway):
    stack.restart_gateway(RATE_LIMITS="off", **LOW)
    assert {a.status_code for a in burst(stack, 30)} == {200}


def test_default_limits_leave_a_busy_client_alone(stack):
    assert {a.status_code for a in burst(stack, 60, "token_worker", "/newapi/status/health")} <= {200, 404}
