"""The runs routes in-process (Flask app on real Redis + the Mongo stand-in), and the
``run_program`` task run by hand the way a worker runs it (no gateway, no worker process)."""

import base64
import io
import zipfile

import pytest

from object_challenge.jobs import tasks as task_registry
from object_challenge.runs import service as runs_service

U1 = {"Authorization": "Token token_1"}
U2 = {"Authorization": "Token token_2"}
ADMIN = {"Authorization": "Token token_admin"}
WORKER = {"Authorization": "Token token_worker"}
HELLO = {"language": "python", "files": [{"name": "main.py", "content": "print('hello')\n"}]}


@pytest.fixture
def config(config):
    config.RUNS_MAX_ACTIVE_PER_USER = 2
    config.RUNS_MAX_WALL_S = 5
    return config


def run_one(client, app, run_id):
    """What a runner does with the job: poll it, run the task, complete it."""
    polled = client.get("/newapi/queue/poll?queue=runs&worker_id=w1", headers=WORKER)
    assert polled.status_code == 200, polled.get_json()
    job = polled.get_json()
    assert job["job_id"] == run_id
    events = []
    job["emit"] = lambda stream, data: events.append((stream, data))
    job["cancelled"] = lambda: False
    task = job["tasks"][0]
    result = task_registry.get_task(task["module"])(task["data"], job)
    done = client.patch(
        f"/newapi/jobs/{run_id}/completed?worker_id=w1",
        json={"failed": False, "info": {}, "result": [result]},
        headers=WORKER,
    )
    assert done.status_code == 200, done.get_json()
    return result, events


def test_languages_list_python_c_ada(client):
    got = client.get("/newapi/runs/languages", headers=U1)
    assert got.status_code == 200
    names = {lang["name"]: lang for lang in got.get_json()["languages"]}
    assert {"python", "c", "ada"} <= set(names)
    assert "run" in names["python"]["modes"] and "build" in names["c"]["modes"]


def test_a_run_is_a_job_on_the_runs_queue_and_its_verdict_is_read_back(client, app):
    created = client.post("/newapi/runs", json=HELLO, headers=U1)
    assert created.status_code == 202, created.get_json()
    body = created.get_json()
    assert body["state"] == "queued" and body["run_id"] == body["job_id"]
    run_id = body["run_id"]
    got = client.get(f"/newapi/runs/{run_id}", headers=U1).get_json()
    assert got["state"] == "queued" and got["verdict"] is None and got["attempt"] == 0
    job = client.get(f"/newapi/jobs/{run_id}", headers=U1).get_json()
    assert job["queue"] == "runs" and job["tasks"][0]["module"] == "run_program"

    result, events = run_one(client, app, run_id)
    assert result["verdict"] == "ok"
    assert ("stdout", "hello\n") in events
    got = client.get(f"/newapi/runs/{run_id}", headers=U1).get_json()
    assert got["state"] == "finished" and got["verdict"] == "ok" and got["attempt"] == 1
    assert got["stages"][0]["stage"] == "run" and got["stages"][0]["exit_code"] == 0


def test_others_get_404_admins_see_it(client):
    run_id = client.post("/newapi/runs", json=HELLO, headers=U1).get_json()["run_id"]
    assert client.get(f"/newapi/runs/{run_id}", headers=U2).status_code == 404
    assert client.get(f"/newapi/runs/{run_id}", headers=ADMIN).status_code == 200
    assert client.get("/newapi/runs/nope", headers=U1).get_json()["error"] == "run_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"language": "python", "files": [{"name": "../x.py", "content": ""}]}, 400, "invalid_run"),
        ({"language": "python", "files": [{"name": "/etc/passwd", "content": ""}]}, 400, "invalid_run"),
        ({"language": "python", "files": [{"name": "a\x00.py", "content": ""}]}, 400, "invalid_run"),
        ({"language": "python", "files": HELLO["files"], "args": "x"}, 400, "invalid_run"),
        ({"language": "cobol", "files": HELLO["files"]}, 422, "unknown_language"),
        ({"language": "python", "files": HELLO["files"], "limits": {"wall_s": 6}}, 422, "limit_above_max"),
        ({"language": "ada", "mode": "prove", "files": [{"name": "main.adb", "content": ""}]}, 501, "mode_unavailable"),
    ],
)
def test_request_rules(client, body, status, code):
    got = client.post("/newapi/runs", json=body, headers=U1)
    assert got.status_code == status, got.get_json()
    assert got.get_json()["error"] == code
    if code == "limit_above_max":
        assert got.get_json()["field"] == "limits.wall_s" and got.get_json()["max"] == 5


def test_the_per_user_cap_answers_429_with_retry_after(client):
    for _ in range(2):
        assert client.post("/newapi/runs", json=HELLO, headers=U1).status_code == 202
    refused = client.post("/newapi/runs", json=HELLO, headers=U1)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"] == "too_many_runs"
    assert client.post("/newapi/runs", json=HELLO, headers=U2).status_code == 202  # per user
    queue = client.get("/newapi/queue?queue=runs", headers=ADMIN).get_json()
    assert queue["entries"] == 3  # the refused one is not left behind


def test_download_zip_and_escape(client):
    got = client.post("/newapi/runs/download", json={**HELLO, "name": "hello"}, headers=U1)
    assert got.status_code == 200 and got.mimetype == "application/zip"
    assert got.headers["Content-Disposition"] == 'attachment; filename="hello.zip"'
    names = zipfile.ZipFile(io.BytesIO(got.data)).namelist()
    assert "hello/main.py" in names and "hello/Makefile" in names
    bad = client.post("/newapi/runs/download", json={"files": [{"name": "../../x", "content": ""}]}, headers=U1)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_run"
    seed = client.post(
        "/newapi/download/", json={"files": [{"basename": "main.c", "contents": "int main(){}"}]}, headers=U1
    )
    assert seed.status_code == 200 and "project/main.c" in zipfile.ZipFile(io.BytesIO(seed.data)).namelist()


def test_seed_routes_run_program_and_unknown_identifier(client, app):
    got = client.post(
        "/newapi/run_program/",
        json={"files": [{"basename": "main.py", "contents": "print('a')\nprint('b')\n"}], "mode": "run"},
        headers=U1,
    )
    assert got.status_code == 200, got.get_json()
    identifier = got.get_json()["identifier"]
    first = client.post("/newapi/check_output/", json={"identifier": identifier}, headers=U1).get_json()
    assert first["completed"] is False and first["output"] == []
    unknown = client.post("/newapi/check_output/", json={"identifier": "nope"}, headers=U1)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "run_not_found"
    run_one(client, app, identifier)


def test_task_data_keeps_binary_files_as_base64():
    req = {
        "language": "python",
        "mode": "run",
        "files": [("main.py", b"\xff\x00")],
        "main": "main.py",
        "stdin": "",
        "args": [],
        "limits": runs_service.prepare(HELLO)["limits"],
    }
    data = runs_service.task_data(req)
    assert base64.b64decode(data["files"][0]["content"]) == b"\xff\x00"
    assert set(data["limits"]) == {"wall_s", "cpu_s", "memory_mb", "processes", "output_kb"}
