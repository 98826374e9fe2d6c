"""The POST /bucket contract through Flask's test client, against the Mongo wire server."""

import base64
import threading

import pytest
from helpers import auth

from object_challenge.buckets.models import Bucket


def post(client, body, token="token_1", **kw):
    headers = auth(token) if token else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, (dict, list, str, int)) and not isinstance(body, str):
        return client.post("/bucket", json=body, headers=headers, **kw)
    return client.post("/bucket", data=body, headers=headers, content_type="application/json", **kw)


@pytest.mark.parametrize(
    "token,name", [("token_1", "test"), ("token_1", "arvan3"), ("token_2", "pushe3"), ("token_3", "foo")]
)
def test_allowed_bucket_is_created(client, app, token, name):
    r = post(client, {"bucket": name}, token)
    assert r.status_code == 201
    assert r.get_json() == {"result": "ok", "bucket": name}
    with app.app_context():
        assert Bucket.objects(name=name).count() == 1


@pytest.mark.parametrize("token,name", [("token_1", "pushe3"), ("token_3", "arvan1")])
def test_refused_by_rule_is_403(client, token, name):
    r = post(client, {"bucket": name}, token)
    assert r.status_code == 403
    assert r.get_json()["result"] == "not allowed"
    assert r.content_type == "application/json"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer token_1"},
        {"Authorization": "Token"},
        {"Authorization": "Token "},
        {"Authorization": "Token token_1 token_2"},
        {"Authorization": "Token nope"},
        {"Authorization": "token_1"},
    ],
)
def test_bad_credentials_are_401(client, headers):
    r = client.post("/bucket", json={"bucket": "test"}, headers=headers)
    assert r.status_code == 401
    assert r.get_json()["error"] == "unauthorized"


def test_basic_auth_with_token_as_user_name_is_accepted(client):
    basic = base64.b64encode(b"token_1:").decode()
    r = client.post("/bucket", json={"bucket": "basic1"}, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 201


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{}", '{"bucket": 5}', '{"bucket": null}', '"x"'])
def test_invalid_body_is_400(client, body):
    r = post(client, body)
    assert r.status_code == 400
    data = r.get_json()
    assert data["result"] == "invalid" and data["reason"]


@pytest.mark.parametrize("name", ["ab", "Upper", "a..b", "10.0.0.1", "xn--abc", "abc-s3alias", "-abc"])
def test_bad_name_is_400_with_reason(client, name):
    r = post(client, {"bucket": name})
    assert r.status_code == 400
    assert r.get_json()["result"] == "invalid"


def test_existing_name_is_409(client):
    assert post(client, {"bucket": "dupe1"}).status_code == 201
    r = post(client, {"bucket": "dupe1"}, "token_2")
    assert r.status_code == 409
    assert r.content_type == "application/json"


def test_body_over_limit_is_413(client):
    r = post(client, '{"bucket": "' + "a" * 70000 + '"}')
    assert r.status_code == 413
    assert r.get_json()["error"]


def test_wrong_method_is_405_json(client):
    r = client.get("/bucket", headers=auth("token_1"))
    assert r.status_code == 405
    assert r.content_type == "application/json"


def test_revoked_token_is_refused(client, runner):
    assert runner.invoke(args=["user", "revoke-token", "a"]).exit_code == 0
    assert post(client, {"bucket": "test"}).status_code == 401


def test_grant_changes_the_answer(client, runner):
    assert post(client, {"bucket": "pushe9"}).status_code == 403
    assert runner.invoke(args=["grant", "a", "pushe", "--allow"]).exit_code == 0
    assert post(client, {"bucket": "pushe9"}).status_code == 201


def test_concurrent_creates_have_one_winner(app):
    """The unique index decides: 16 threads create one name through the storage view."""
    barrier = threading.Barrier(16)
    codes = []

    def create():
        client = app.test_client()
        barrier.wait()
        codes.append(client.post("/arvan", json={"bucket": "race1"}, headers=auth("token_1")).status_code)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * 15
    with app.app_context():
        assert Bucket.objects(name="race1").count() == 1


def test_gateway_headers_need_the_secret(client, app):
    forged = {"X-User-Id": "2", "X-User-Role": "admin", "X-User-Name": "b"}
    assert client.get("/newapi/whoami", headers=forged).status_code == 401
    trusted = dict(forged, **{"X-Gateway-Secret": app.config["GATEWAY_SECRET"]})
    r = client.get("/newapi/whoami", headers=trusted)
    assert r.status_code == 200 and r.get_json()["user_id"] == 2
