"""One JSON body reader for the services' views (core/bodies.py): every route that reads a
JSON body refuses a body nested deeper than Python's parser goes with its own 400, never a
500 (the campaigns, runs and publish readers were copies that let RecursionError through)."""

import pytest
from helpers import auth

DEEP = b"[" * 20000 + b"]" * 20000


@pytest.mark.parametrize(
    "method, path, token, code",
    [
        ("POST", "/newapi/queue", "token_1", "bad_json"),
        ("POST", "/newapi/campaigns", "token_admin", "bad_json"),
        ("POST", "/newapi/runs", "token_1", "invalid_run"),
        ("POST", "/newapi/puzzle/", "token_admin", "bad_json"),
        ("PATCH", "/newapi/puzzle/1/piece/0/move/", "token_1", "bad_json"),
    ],
)
def test_a_body_nested_too_deeply_is_the_routes_400(client, method, path, token, code):
    headers = {**auth(token), "Content-Type": "application/json"}
    answer = client.open(path, method=method, data=DEEP, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    body = answer.get_json()
    assert (body["error"], body["message"]) == (code, "the body is nested too deeply")


@pytest.mark.parametrize(
    "method, path, token, data, code, message",
    [
        ("POST", "/newapi/queue", "token_1", b"  ", "bad_json", "send a JSON body"),
        ("POST", "/newapi/runs", "token_1", b"", "invalid_run", "send a JSON object"),
        ("POST", "/newapi/campaigns", "token_admin", b"{", "bad_json", "the body is not valid JSON"),
        ("PATCH", "/newapi/puzzle/1/piece/0/move/", "token_1", b" ", "bad_json", "the body is not valid JSON"),
        ("PATCH", "/newapi/puzzle/1/piece/0/move/", "token_1", b"null", "bad_json", "the body is not valid JSON"),
    ],
)
def test_a_missing_or_broken_body_is_refused_as_each_service_did(client, method, path, token, data, code, message):
    headers = {**auth(token), "Content-Type": "application/json"}
    answer = client.open(path, method=method, data=data, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    body = answer.get_json()
    assert (body["error"], body["message"]) == (code, message)
