"""Token authentication at the edge: 401s, identity headers, propagation."""

import base64

import pytest
import requests
from gw import is_json_error, log_entry, rid
from helpers import auth, wait_until

from object_challenge.dev.devstores import free_port

BAD_CREDENTIALS = {
    "none": {},
    "other scheme": {"Authorization": "Bearer token_1"},
    "empty": {"Authorization": ""},
    "scheme only": {"Authorization": "Token"},
    "two tokens": {"Authorization": "Token token_1 token_2"},
    "unknown token": {"Authorization": "Token not-a-token"},
    "bad basic": {"Authorization": "Basic ###"},
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_bad_credentials_get_401_json_on_bucket(stack, case):
    answer = requests.post(
        f"{stack.url}/bucket", json={"bucket": "whatever1"}, headers=BAD_CREDENTIALS[case], timeout=5
    )
    is_json_error(answer, 401, "unauthorized")


def test_unknown_token_gets_401_on_newapi(stack):
    answer = requests.get(f"{stack.url}/newapi/whoami", headers=auth("nope-nope"), timeout=5)
    is_json_error(answer, 401, "unauthorized")


def test_basic_auth_with_the_token_as_user_name_is_accepted(stack):
    basic = base64.b64encode(b"token_worker:").decode()
    answer = requests.get(f"{stack.url}/newapi/whoami", headers={"Authorization": f"Basic {basic}"}, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["role"] == "worker"


def test_forged_identity_headers_never_reach_the_service(stack):
    forged = {
        **auth("token_3"),
        "X-User-Id": "1",
        "X-User-Role": "admin",
        "X-User-Name": "a",
        "X-Consumer-Id": "9",
        "X-Gateway-Secret": "guess",
        "X-User-Extra": "x",
    }
    answer = requests.get(f"{stack.url}/newapi/whoami", headers=forged, timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["user_id"], body["role"]) == (3, "user")
    assert body["headers"] == {"X-User-Id": "3", "X-User-Name": "c", "X-User-Role": "user"}


def test_forged_identity_without_a_token_is_not_an_identity(stack):
    answer = requests.get(
        f"{stack.url}/newapi/whoami",
        headers={"X-User-Id": "5", "X-User-Role": "admin", "X-Gateway-Secret": "x"},
        timeout=5,
    )
    is_json_error(answer, 401)


def test_a_sane_client_request_id_is_kept_end_to_end(stack):
    request_id = rid("keep")
    answer = requests.get(
        f"{stack.url}/newapi/whoami", headers={**auth("token_1"), "X-Request-Id": request_id}, timeout=5
    )
    assert answer.headers["X-Request-Id"] == request_id
    assert answer.json()["request_id"] == request_id
    assert log_entry(stack, request_id)["user"] == "1"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "ünï"])
def test_an_insane_client_request_id_is_replaced(stack, bad):
    answer = requests.get(f"{stack.url}/", headers={"X-Request-Id": bad.encode("utf-8")}, timeout=5)
    assert answer.headers["X-Request-Id"] != bad
    assert len(answer.headers["X-Request-Id"]) == 32


def test_every_answer_has_a_request_id(stack):
    for method, path in [("GET", "/"), ("GET", "/nope"), ("POST", "/bucket"), ("GET", "/newapi/info")]:
        assert requests.request(method, stack.url + path, timeout=5).headers.get("X-Request-Id")


def test_revoked_token_is_refused_within_two_seconds(stack):
    stack.manage("user", "add", "revokee", "--token", "token_revokee")
    wait_until(
        lambda: requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_revokee"), timeout=5).status_code == 200,
        timeout=2.0,
        message="new user seen",
    )
    stack.manage("user", "revoke-token", "revokee")
    wait_until(
        lambda: requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_revokee"), timeout=5).status_code == 401,
        timeout=2.0,
        message="revocation seen",
    )


def test_new_grant_changes_the_edge_decision_within_two_seconds(stack):
    def answer():
        return requests.post(
            f"{stack.url}/bucket", json={"bucket": f"{rid('pushe').lower()}"}, headers=auth("token_3"), timeout=5
        ).status_code

    assert answer() == 403
    stack.manage("grant", "c", "pushe", "--allow")
    try:
        wait_until(lambda: answer() == 201, timeout=2.0, message="grant seen at the edge")
    finally:
        stack.manage("grant", "remove", "c", "pushe")
    wait_until(lambda: answer() == 403, timeout=2.0, message="grant removal seen at the edge")


def _fallback_checks(stack):
    """With no snapshot the api service decides, and decides the same."""
    wait_until(
        lambda: _refusal_upstream(stack) == stack.settings["API_ADDR"],
        timeout=3.0,
        message="POST /bucket decided by the api service",
    )
    answer = requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_2"), timeout=5)
    assert answer.json()["user_id"] == 2
    is_json_error(requests.get(f"{stack.url}/newapi/whoami", headers=auth("nope"), timeout=5), 401)
    name = rid("test").lower()
    answer = requests.post(f"{stack.url}/bucket", json={"bucket": name}, headers=auth("token_1"), timeout=5)
    assert (answer.status_code, answer.json()) == (201, {"result": "ok", "bucket": name})


def test_without_a_snapshot_the_api_service_decides(stack, gateway):
    # a Redis database with no snapshot in it
    stack.restart_gateway(REDIS_URL=stack.base_env["REDIS_URL"].rsplit("/", 1)[0] + "/9")
    _fallback_checks(stack)


def test_with_redis_down_the_api_service_decides(stack, gateway):
    stack.restart_gateway(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    _fallback_checks(stack)


def test_without_a_snapshot_revocation_still_takes_under_two_seconds(stack, gateway):
    stack.manage("user", "add", "fallbackee", "--token", "token_fallbackee")
    stack.restart_gateway(REDIS_URL=stack.base_env["REDIS_URL"].rsplit("/", 1)[0] + "/9")
    assert requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_fallbackee"), timeout=5).status_code == 200
    gateway_redis, stack.env["REDIS_URL"] = stack.env["REDIS_URL"], stack.base_env["REDIS_URL"]
    stack.manage("user", "revoke-token", "fallbackee")  # in the real stores, as an operator would
    stack.env["REDIS_URL"] = gateway_redis
    wait_until(
        lambda: (
            requests.get(f"{stack.url}/newapi/whoami", headers=auth("token_fallbackee"), timeout=5).status_code == 401
        ),
        timeout=2.0,
        message="revocation seen",
    )


def _refusal_upstream(stack):
    """Who answered token_1's refused pushe3: "" (the edge) or the api service's address."""
    request_id = rid("fb")
    answer = requests.post(
        f"{stack.url}/bucket",
        json={"bucket": "pushe3"},
        headers={**auth("token_1"), "X-Request-Id": request_id},
        timeout=5,
    )
    is_json_error(answer, 403, "not_allowed")
    assert answer.json()["result"] == "not allowed"
    return log_entry(stack, request_id)["upstream"]


def test_the_request_id_header_is_sent_once(stack):
    requests.get(f"{stack.url}/newapi/info", timeout=5)  # make the next one a cache HIT
    for path, token in [
        ("/", None),
        ("/newapi/whoami", "token_1"),
        ("/nope", None),
        ("/newapi/info", None),
        ("/newapi/status/health", "token_worker"),
    ]:
        answer = requests.get(stack.url + path, headers=auth(token) if token else {}, timeout=5)
        # requests joins repeated headers with ", "
        assert "," not in answer.headers["X-Request-Id"], (path, answer.headers)
