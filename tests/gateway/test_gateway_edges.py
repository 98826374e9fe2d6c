"""What leaves the gateway is always the house JSON shape (issue 17): nginx's own refusals,
gunicorn's HTML errors, redirects and OPTIONS; two Authorization headers; /healthz; the
identity headers' encoding; TRUSTED_PROXIES."""

import hashlib
import json
import socket

import requests
from gw import is_json_error, log_entry, redis_of, rid
from helpers import auth

LOW_IP = dict(RATE_LIMIT_IP_RPS=0.5, RATE_LIMIT_IP_BURST=3)


def raw(stack, data, timeout=15):
    """Send bytes as they are; the answer's status and decoded JSON body (Connection: close)."""
    host, port = stack.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        body = out
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_two_authorization_headers_are_401_not_nginx_400(stack):
    request = (
        b"GET /newapi/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Token token_1\r\n"
        b"Authorization: Token token_2\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = raw(stack, request)
    assert status == 401, body
    assert body["error"] == "unauthorized"
    assert headers["content-type"] == "application/json"
    assert headers["www-authenticate"].startswith("Token")


def test_a_header_too_large_for_nginx_is_431_json(stack):
    answer = requests.get(f"{stack.url}/newapi/info", headers={"X-Big": "a" * 20000}, timeout=15)
    is_json_error(answer, 431, "headers_too_large")


def test_an_unknown_http_version_is_505_json(stack):
    status, headers, body = raw(stack, b"GET / HTTP/2.5\r\nHost: x\r\n\r\n")
    assert status == 505
    assert headers["content-type"] == "application/json"
    assert body["error"] == "http_version_not_supported"


def test_a_uri_too_long_for_gunicorn_is_414_json(stack):
    # longer than gunicorn's request line limit (4094), shorter than nginx's buffer (8 KiB)
    answer = requests.get(f"{stack.url}/newapi/info?x={'a' * 5000}", timeout=15)
    is_json_error(answer, 414, "uri_too_long")


def test_too_many_headers_for_gunicorn_is_431_json(stack):
    headers = {**{f"X-H{i}": "v" for i in range(120)}, **auth("token_1")}  # gunicorn takes 100 fields
    # /newapi/whoami: never cached at the gateway (/newapi/info may be, for 30 s, and then
    # the request never reaches gunicorn)
    answer = requests.get(f"{stack.url}/newapi/whoami", headers=headers, timeout=15)
    is_json_error(answer, 431, "headers_too_large")


def test_a_uri_too_long_for_nginx_is_414_json(stack):
    answer = requests.get(f"{stack.url}/newapi/info?x={'a' * 9000}", timeout=15)
    is_json_error(answer, 414, "uri_too_long")


def test_options_is_204_with_allow(stack):
    answer = requests.options(f"{stack.url}/newapi/info", timeout=15)
    assert answer.status_code == 204, answer.text
    assert "GET" in answer.headers["Allow"]
    assert answer.content == b""


def test_options_on_gateway_routes_is_405_json_with_allow(stack):
    for path, allow in (("/bucket", "POST"), ("/", "GET"), ("/healthz", "GET, HEAD")):
        answer = requests.options(stack.url + path, timeout=15)
        is_json_error(answer, 405, "method_not_allowed")
        assert answer.headers["Allow"] == allow


def test_newapi_without_its_slash_is_no_html_redirect(stack):
    answer = requests.get(f"{stack.url}/newapi", allow_redirects=False, timeout=15)
    assert answer.status_code < 500
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "Location" not in answer.headers or answer.headers["Location"].startswith(("/", stack.url))


def test_healthz_reports_redis_and_the_snapshot(stack):
    answer = requests.get(f"{stack.url}/healthz", timeout=15)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True
    assert body["snapshot"]["edge_decisions"] is True
    assert body["snapshot"]["version"] == int(redis_of(stack).get("oc:gw:version"))
    assert 0 <= body["snapshot"]["checked_s_ago"] < 5
    assert body["request_id"] == answer.headers["X-Request-Id"]
    is_json_error(requests.post(f"{stack.url}/healthz", timeout=15), 405, "method_not_allowed")


def test_healthz_is_503_when_redis_is_unreachable(stack, gateway):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    unused = port.getsockname()[1]
    port.close()
    stack.restart_gateway(REDIS_URL=f"redis://127.0.0.1:{unused}/0")
    answer = requests.get(f"{stack.url}/healthz", timeout=15)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["redis"]["ok"] is False
    assert answer.headers["Retry-After"] == "1"


def test_identity_values_cannot_break_a_header(stack):
    """A name with CR/LF and non-ASCII (as an old snapshot may hold): sent encoded, read back whole."""
    name = "évil\r\nX-User-Role: admin"
    token = f"tok-{rid('name')}"
    redis = redis_of(stack)
    redis.hset(
        "oc:gw:tokens",
        hashlib.sha256(token.encode()).hexdigest(),
        json.dumps({"user_id": 4242, "name": name, "role": "user"}),
    )
    try:
        answer = requests.get(f"{stack.url}/newapi/whoami", headers=auth(token), timeout=15)
    finally:
        redis.hdel("oc:gw:tokens", hashlib.sha256(token.encode()).hexdigest())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["user_id"], body["name"], body["role"]) == (4242, name, "user")
    assert body["headers"]["X-User-Role"] == "user"
    assert "\n" not in body["headers"]["X-User-Name"]


def _anonymous_burst(stack, forwarded_for):
    return [
        requests.get(f"{stack.url}/newapi/info", headers={"X-Forwarded-For": xff}, timeout=15).status_code
        for xff in forwarded_for
    ]


def test_a_forged_x_forwarded_for_changes_nothing_by_default(stack, gateway):
    stack.restart_gateway(**LOW_IP)
    statuses = _anonymous_burst(stack, [f"10.9.8.{i}" for i in range(5)])
    assert statuses == [200, 200, 200, 429, 429]  # one budget: the connection's address
    request_id = rid("xff")
    requests.get(
        f"{stack.url}/healthz", headers={"X-Request-Id": request_id, "X-Forwarded-For": "10.1.1.1"}, timeout=15
    )
    assert log_entry(stack, request_id)["remote_addr"] == "127.0.0.1"


def test_a_trusted_proxy_s_x_forwarded_for_is_the_client_address(stack, gateway):
    stack.restart_gateway(TRUSTED_PROXIES="127.0.0.0/8, ::1", **LOW_IP)
    statuses = _anonymous_burst(stack, [f"10.9.8.{i}" for i in range(5)])
    assert statuses == [200] * 5  # five clients behind the proxy, one request each
    # a client cannot forge its way around it: only the entry the trusted proxy added counts
    assert _anonymous_burst(stack, [f"10.0.0.{i}, 10.9.9.9" for i in range(4)]) == [200, 200, 200, 429]
    request_id = rid("xff")
    requests.get(
        f"{stack.url}/healthz", headers={"X-Request-Id": request_id, "X-Forwarded-For": "10.1.1.1"}, timeout=15
    )
    assert log_entry(stack, request_id)["remote_addr"] == "10.1.1.1"
