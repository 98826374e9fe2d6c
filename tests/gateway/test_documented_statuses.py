"""Each status code the docs promise, compared with a real answer through the gateway (issue 17).

Every case names the doc, a phrase of it that states the status, and a request: the test fails
when the phrase leaves the doc (update the case with the doc) or the answer disagrees with it."""

import socket
from pathlib import Path

import pytest
import requests
from helpers import auth

DOCS = Path(__file__).resolve().parents[2] / "docs"
JSON = {"Content-Type": "application/json"}

# (doc, phrase in it, method, path, token, body, expected status, expected error code or None)
CASES = [
    ("gateway.md", "405 (not POST, `Allow: POST`)", "GET", "/bucket", "token_1", None, 405, "method_not_allowed"),
    ("gateway.md", "413 (body over `BODY_LIMIT_BYTES`", "POST", "/bucket", "token_1", "x" * 70000, 413, None),
    ("gateway.md", "`POST /bucket` needs an identity: no credentials -> 401", "POST", "/bucket", None, "{}", 401, None),
    (
        "gateway.md",
        '400 `{"result": "invalid", "reason": ...}`',
        "POST",
        "/bucket",
        "token_1",
        '{"bucket": 1}',
        400,
        None,
    ),
    ("gateway.md", '403 `{"result": "not allowed"}`', "POST", "/bucket", "token_1", '{"bucket": "pushe3"}', 403, None),
    ("gateway.md", "bad or unknown credentials -> 401", "GET", "/newapi/info", "nope-nope", None, 401, "unauthorized"),
    ("gateway.md", "`/_oc/auth` | 404 JSON", "GET", "/_internal/auth", "token_1", None, 404, "not_found"),
    ("gateway.md", "`/_oc/auth` | 404 JSON", "GET", "/arvan", "token_1", None, 404, "not_found"),
    ("gateway.md", "401 without credentials, 403 otherwise", "DELETE", "/newapi/_cache/info", None, None, 401, None),
    (
        "gateway.md",
        "401 without credentials, 403 otherwise",
        "DELETE",
        "/newapi/_cache/info",
        "token_1",
        None,
        403,
        None,
    ),
    ("gateway.md", "Other methods: 405 (`Allow: GET, HEAD`)", "POST", "/healthz", None, None, 405, None),
    ("gateway.md", "`GET /healthz` | gateway health", "GET", "/healthz", None, None, 200, None),
    ("gateway.md", "as the standard **431** `headers_too_large`", "GET", "/newapi/info", None, "BIGHEADER", 431, None),
    (
        "gateway.md",
        "A request line over 8 KiB is nginx's 414",
        "GET",
        "/newapi/info?" + "a" * 9000,
        None,
        None,
        414,
        None,
    ),
    (
        "gateway.md",
        "gunicorn's HTML 400/414 (a request line over 4094 bytes)",
        "GET",
        "/newapi/info?" + "a" * 5000,
        None,
        None,
        414,
        "uri_too_long",
    ),
    ("gateway.md", "with\n`WWW-Authenticate`", "GET", "/newapi/whoami", "token_1", "TWOAUTH", 401, "unauthorized"),
    (
        "gateway.md",
        "`OPTIONS` on a service route: the service's `Allow` with **204**",
        "OPTIONS",
        "/newapi/info",
        None,
        None,
        204,
        None,
    ),
    ("jobs.md", "`POST /queue` `{", "POST", "/newapi/queue", "token_1", "[]", 400, None),
    (
        "jobs.md",
        "400 `bad_modules`",
        "GET",
        "/newapi/queue/poll?worker_id=w1&modules=bad%20name",
        "token_worker",
        None,
        400,
        "bad_modules",
    ),
    ("jobs.md", '200 `{"status": "online"}`', "GET", "/newapi/status/health", "token_1", None, 200, None),
    (
        "publish.md",
        "400 `bad_size`; 403 not admin",
        "POST",
        "/newapi/puzzle/",
        "token_admin",
        '{"rows": 0, "cols": 2, "table_width": 1000, "table_height": 800}',
        400,
        "bad_size",
    ),
    (
        "publish.md",
        "400 `bad_size`; 403 not admin",
        "POST",
        "/newapi/puzzle/",
        "token_1",
        '{"rows": 2, "cols": 2, "table_width": 1000, "table_height": 800}',
        403,
        None,
    ),
    (
        "publish.md",
        "404\n`puzzle_not_found`",
        "GET",
        "/newapi/puzzle/987654321/updates/",
        "token_1",
        None,
        404,
        "puzzle_not_found",
    ),
    (
        "publish.md",
        "Move answers, in the contract's order: 401",
        "PATCH",
        "/newapi/puzzle/1/piece/1/move/",
        None,
        '{"token": "t", "x": 1, "y": 1}',
        401,
        None,
    ),
]


def send(stack, method, path, token, body):
    headers = {**(auth(token) if token else {}), **JSON}
    if body == "BIGHEADER":
        headers["X-Big"], body = "a" * 20000, None
    if body == "TWOAUTH":
        host, port = stack.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=15) as s:
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Token token_1\r\n"
                "Authorization: Token token_2\r\nConnection: close\r\n\r\n".encode()
            )
            head = s.recv(65536).decode("latin-1")
        return int(head.split()[1]), "unauthorized" if '"unauthorized"' in head else None
    answer = requests.request(method, stack.url + path, headers=headers, data=body, timeout=15, allow_redirects=False)
    code = None
    if answer.content and answer.headers.get("Content-Type", "").startswith("application/json"):
        parsed = answer.json()
        code = parsed.get("error") if isinstance(parsed, dict) else None
    return answer.status_code, code


@pytest.mark.parametrize(
    "doc, phrase, method, path, token, body, status, code", CASES, ids=[f"{c[0]}:{c[6]}:{c[3][:40]}" for c in CASES]
)
def test_the_documented_status_is_the_real_one(stack, doc, phrase, method, path, token, body, status, code):
    text = (DOCS / doc).read_text()
    assert " ".join(phrase.split()) in " ".join(text.split()), f"{doc} no longer says {phrase!r}"
    real_status, real_code = send(stack, method, path, token, body)
    assert real_status == status, (doc, phrase, real_status, real_code)
    if code:
        assert real_code == code
