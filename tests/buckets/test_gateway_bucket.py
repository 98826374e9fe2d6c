"""POST /bucket through the gateway: the contract of issue 3, decided at the edge."""

import pytest
import requests
from gw import is_json_error, log_entry, rid
from helpers import auth


def post(stack, token, body, **kw):
    headers = auth(token) if token else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, (dict, list, int)) or body is None:
        return requests.post(f"{stack.url}/bucket", json=body, headers=headers, timeout=10, **kw)
    return requests.post(f"{stack.url}/bucket", data=body, headers=headers, timeout=10, **kw)


def unique(prefix="test"):
    return f"{prefix}{rid('b').lower()}"


@pytest.mark.parametrize(
    "token,prefix", [("token_1", "test"), ("token_1", "arvan"), ("token_2", "pushe"), ("token_3", "foo")]
)
def test_allowed_names_are_created(stack, token, prefix):
    name = unique(prefix)
    answer = post(stack, token, {"bucket": name})
    assert answer.status_code == 201
    assert answer.json() == {"result": "ok", "bucket": name}


@pytest.mark.parametrize("token,name", [("token_1", "pushe3"), ("token_3", "arvan1"), ("token_3", "pushe-x")])
def test_refusals_are_403_not_allowed_decided_at_the_edge(stack, token, name):
    request_id = rid("deny")
    answer = post(stack, token, {"bucket": name}, headers={"X-Request-Id": request_id})
    body = is_json_error(answer, 403, "not_allowed")
    assert body["result"] == "not allowed"
    assert log_entry(stack, request_id)["upstream"] == ""


def test_an_existing_name_is_409(stack):
    name = unique()
    assert post(stack, "token_1", {"bucket": name}).status_code == 201
    assert post(stack, "token_1", {"bucket": name}).status_code == 409


INVALID = {
    "not json": "{nope",
    "empty body": "",
    "array": [1, 2],
    "number": 3,
    "no bucket": {"name": "abc"},
    "bucket null": {"bucket": None},
    "bucket number": {"bucket": 12},
    "too short": {"bucket": "ab"},
    "too long": {"bucket": "a" * 64},
    "uppercase": {"bucket": "Abc"},
    "underscore": {"bucket": "a_b"},
    "leading dash": {"bucket": "-abc"},
    "trailing dot": {"bucket": "abc."},
    "double dot": {"bucket": "a..b"},
    "ip address": {"bucket": "192.168.5.4"},
    "xn-- prefix": {"bucket": "xn--abc"},
    "-s3alias suffix": {"bucket": "abc-s3alias"},
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_bodies_and_names_are_400_with_a_reason_at_the_edge(stack, case):
    request_id = rid("inv")
    answer = post(stack, "token_1", INVALID[case], headers={"X-Request-Id": request_id})
    body = is_json_error(answer, 400, "invalid_bucket")
    assert body["result"] == "invalid" and body["reason"]
    assert log_entry(stack, request_id)["upstream"] == ""


def test_credentials_are_checked_before_the_body(stack):
    is_json_error(post(stack, None, "{nope"), 401)


def test_wrong_method_is_405_json(stack):
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = requests.request(method, f"{stack.url}/bucket", headers=auth("token_1"), timeout=5)
        is_json_error(answer, 405, "method_not_allowed")
        assert answer.headers["Allow"] == "POST"


def test_body_over_the_limit_is_413_json(stack):
    limit = int(stack.env.get("BODY_LIMIT_BYTES", 64 * 1024))
    big = '{"bucket": "abc", "pad": "' + "x" * limit + '"}'
    is_json_error(post(stack, "token_1", big), 413)


def test_chunked_body_over_the_limit_is_413_json(stack):
    limit = int(stack.env.get("BODY_LIMIT_BYTES", 64 * 1024))

    def chunks():
        yield b'{"bucket": "abc", "pad": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    is_json_error(post(stack, "token_1", chunks()), 413)
