"""Routing, the index, internal paths and upstream failures."""

import socket

import pytest
import requests
from gw import is_json_error, log_entry, rid, timed
from helpers import auth

from object_challenge.dev.devstores import free_port


def upstream_of(stack, method, path, token="token_1"):
    request_id = rid("route")
    requests.request(method, stack.url + path, headers={**auth(token), "X-Request-Id": request_id}, timeout=10)
    return log_entry(stack, request_id)["upstream"]


def test_index_is_a_small_json_document(stack):
    answer = requests.get(f"{stack.url}/", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["name"] == "object_challenge" and body["version"] and body["links"]


def test_index_takes_get_only(stack):
    is_json_error(requests.post(f"{stack.url}/", timeout=5), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "path,service",
    [
        ("/newapi/whoami", "api"),
        ("/newapi/info", "api"),
        ("/newapi/puzzles", "api"),
        ("/newapi/status/health", "jobs"),
        ("/newapi/docs/openapi.json", "jobs"),
        ("/newapi/queue", "jobs"),
        ("/newapi/jobs/x", "jobs"),
        ("/newapi/workers", "jobs"),
        ("/newapi/data/m/n", "jobs"),
        ("/newapi/puzzle/1/", "publish"),
        # a puzzle no test creates: the gateway hands a puzzle Redis does not hold to the service
        ("/newapi/puzzle/999999/piece/2/token/", "publish"),
        ("/newapi/puzzle/1/updates/?since=0", "publish"),
        ("/newapi/runs", "jobs"),
        ("/newapi/runs/x", "jobs"),
        ("/newapi/run_program", "jobs"),
        ("/newapi/campaigns", "jobs"),
        ("/newapi/dashboard/queues", "api"),
        ("/dashboard/", "api"),
        ("/puzzle/1/", "api"),
    ],
)
def test_newapi_paths_go_to_their_service(stack, path, service):
    assert upstream_of(stack, "GET", path) == stack.settings[f"{service.upper()}_ADDR"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/_internal/auth"),
        ("POST", "/arvan"),
        ("GET", "/_oc/auth"),
        ("GET", "/nope"),
        ("POST", "/bucket/"),
        ("GET", "/static/x.js"),
    ],
)
def test_internal_and_unrouted_paths_are_404_json(stack, method, path):
    answer = requests.request(
        method, stack.url + path, headers=auth("token_admin"), json={"bucket": "abcdef"}, timeout=5
    )
    is_json_error(answer, 404, "not_found")


def test_the_api_index_answers(stack):
    answer = requests.get(stack.url + "/newapi/", timeout=5, allow_redirects=False)
    assert answer.status_code == 200 and answer.json()["links"]["puzzles"]["href"] == "/newapi/puzzle/"
    # without the slash: the same index, not nginx's HTML 301
    bare = requests.get(stack.url + "/newapi", timeout=5, allow_redirects=False)
    assert bare.status_code == 200 and bare.json()["links"] == answer.json()["links"]


def test_every_link_of_the_gateway_index_answers_its_method(stack):
    links = requests.get(f"{stack.url}/", timeout=5).json()["links"]
    assert links
    for name, link in links.items():
        body = {"bucket": "test"} if link["method"] == "POST" else None
        answer = requests.request(
            link["method"], stack.url + link["href"], headers=auth("token_1"), json=body, timeout=10
        )
        # answered: the route exists and takes the method (a bucket may exist already: 409)
        assert answer.status_code in (200, 201, 409), (name, link, answer.status_code, answer.text[:200])


def test_service_down_is_a_fast_502_json(stack, gateway):
    stack.restart_gateway(PUBLISH_ADDR=f"127.0.0.1:{free_port()}")
    answer, took = timed(lambda: requests.get(f"{stack.url}/newapi/puzzle/1/", headers=auth("token_1"), timeout=10))
    is_json_error(answer, 502, "bad_gateway")
    assert took < 1.0


def test_service_not_accepting_is_a_json_504_within_the_connect_timeout(stack, gateway):
    # a listening socket whose backlog is full: connects hang until the gateway gives up
    hog = socket.socket()
    hog.bind(("127.0.0.1", 0))
    hog.listen(0)
    port = hog.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        stack.restart_gateway(JOBS_ADDR=f"127.0.0.1:{port}")
        answer, took = timed(lambda: requests.get(f"{stack.url}/newapi/queue", headers=auth("token_1"), timeout=10))
        assert answer.status_code in (502, 504)
        is_json_error(answer, answer.status_code)
        assert took < 3.0
    finally:
        for s in fillers:
            s.close()
        hog.close()


def test_bad_request_from_nginx_itself_is_json(stack):
    with socket.create_connection(("127.0.0.1", int(stack.settings["GATEWAY_PORT"]))) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 400")
    assert "application/json" in head


def test_updates_of_a_puzzle_redis_does_not_hold_are_decided_by_publish_but_never_proxied(stack):
    # oc.stream serves every stream itself; for a puzzle Redis lacks it asks the service once
    # (a subrequest: the service's 404, or a reload), so the stream itself never goes upstream
    answer = requests.get(f"{stack.url}/newapi/puzzle/987654321/updates/", headers=auth("token_1"), timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"] == "puzzle_not_found"
    assert upstream_of(stack, "GET", "/newapi/puzzle/987654321/updates/") == ""


@pytest.mark.parametrize("path", ["/newapi/data/%00/x", "/bucket%00", "/%00"])
def test_a_request_nginx_itself_rejects_is_a_json_400(stack, path):
    # nginx refuses these while parsing the request line; its error page must still be JSON
    answer = requests.get(stack.url + path, headers=auth("token_1"), timeout=5)
    is_json_error(answer, 400, "bad_request")
