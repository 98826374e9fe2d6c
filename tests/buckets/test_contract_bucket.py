"""Issue 3's POST /bucket contract, as a client sees it through the gateway."""

import uuid

import pytest
import requests
from helpers import auth, wait_until


def create(url, name, token="token_1", **kw):
    headers = auth(token) if token else {}
    headers.update(kw.pop("headers", {}))
    return requests.post(f"{url}/bucket", json={"bucket": name}, headers=headers, timeout=10, **kw)


def unique(prefix="t"):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(
    "token,prefix", [("token_1", "test"), ("token_1", "arvan"), ("token_2", "pushe"), ("token_3", "foo")]
)
def test_allowed_creation(gateway, token, prefix):
    name = unique(prefix)
    r = create(gateway, name, token)
    assert r.status_code in (200, 201)
    assert r.json() == {"result": "ok", "bucket": name}


@pytest.mark.parametrize("token,name", [("token_1", "pushe3"), ("token_3", "arvan1")])
def test_refusal_is_403_not_allowed(gateway, token, name):
    r = create(gateway, name, token)
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["result"] == "not allowed"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer token_1", "Token", "Token  ", "Token token_1 token_2", "Token unknown-token", "token_1"],
)
def test_bad_credentials_are_401_json(gateway, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = requests.post(f"{gateway}/bucket", json={"bucket": unique()}, headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]


@pytest.mark.parametrize("body", ["not json", "[]", "{}", '{"bucket": 1}', '"str"'])
def test_invalid_body_is_400(gateway, body):
    r = requests.post(f"{gateway}/bucket", data=body, headers=auth("token_1"), timeout=10)
    assert r.status_code == 400
    assert r.json()["result"] == "invalid" and r.json()["reason"]


@pytest.mark.parametrize("name", ["ab", "UPPER", "a..b", "192.168.0.1", "xn--abc", "abc-s3alias", "abc-"])
def test_bad_name_is_400_with_reason(gateway, name):
    r = create(gateway, name)
    assert r.status_code == 400
    assert r.json()["result"] == "invalid" and r.json()["reason"]


def test_existing_name_is_409(gateway):
    name = unique()
    assert create(gateway, name).status_code in (200, 201)
    r = create(gateway, name, "token_2")
    assert r.status_code == 409
    assert r.headers["Content-Type"].startswith("application/json")


def test_body_over_64k_is_413_json(gateway):
    r = requests.post(
        f"{gateway}/bucket", data='{"bucket": "' + "a" * 70000 + '"}', headers=auth("token_1"), timeout=10
    )
    assert r.status_code == 413
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405_json(gateway, method):
    r = requests.request(method, f"{gateway}/bucket", headers=auth("token_1"), timeout=10)
    assert r.status_code == 405
    assert r.headers["Content-Type"].startswith("application/json")


def test_concurrent_creates_through_the_gateway_have_one_winner(gateway):
    from concurrent.futures import ThreadPoolExecutor

    name = unique("race")
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: create(gateway, name).status_code, range(12)))
    assert sorted(codes) == [201] + [409] * 11


def test_manage_grant_changes_the_answer_at_the_gateway(gateway, stack):
    name = unique("pushe")
    assert create(gateway, name, "token_3").status_code == 403
    stack.manage("grant", "c", "pushe", "--allow")
    try:
        wait_until(
            lambda: create(gateway, unique("pushe"), "token_3").status_code == 201,
            timeout=2.5,
            message="the grant to reach the gateway",
        )
    finally:
        stack.manage("grant", "remove", "c", "pushe")
    wait_until(
        lambda: create(gateway, unique("pushe"), "token_3").status_code == 403,
        timeout=2.5,
        message="the removed grant to reach the gateway",
    )


def test_manage_user_add_gives_a_working_token(gateway, stack):
    user = unique("u")
    stack.manage("user", "add", user, "--token", f"tok-{user}")
    wait_until(
        lambda: create(gateway, unique(), f"tok-{user}").status_code == 201,
        timeout=2.5,
        message="the new user's token to work at the gateway",
    )
