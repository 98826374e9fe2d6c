"""Runs through the real gateway (make run's stack, its runner worker): each limit and
attack contained with the right verdict and a healthy runner afterwards, the request
rules, the zip download, the seed's routes."""

import io
import json
import os
import time
import zipfile
from urllib.parse import urlsplit

import pytest
import requests
from helpers import auth, wait_until

USER, OTHER, ADMIN = auth("token_1"), auth("token_2"), auth("token_admin")
SMALL = {"wall_s": 3, "cpu_s": 1, "memory_mb": 128, "processes": 16, "output_kb": 64}


def api(stack):
    return stack.url + "/newapi"


def py(source, **extra):
    return {"language": "python", "files": [{"name": "main.py", "content": source}], "limits": SMALL, **extra}


def submit(stack, body, headers=USER):
    r = requests.post(api(stack) + "/runs", json=body, headers=headers, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["run_id"]


def state(stack, run_id, headers=USER):
    r = requests.get(f"{api(stack)}/runs/{run_id}", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def finished(stack, run_id, timeout=30):
    def done():
        got = state(stack, run_id)
        return got if got["state"] in ("finished", "cancelled") else None

    return wait_until(done, timeout=timeout, interval=0.1, message=f"run {run_id} to finish")


def run(stack, body, timeout=30):
    return finished(stack, submit(stack, body), timeout)


def output(stack, run_id):
    """The run's output, for assertion messages."""
    events = requests.get(f"{api(stack)}/runs/{run_id}/output", headers=USER, timeout=10).json()["events"]
    return "".join(f"[{e['stream']}] {e['data'][:300]}" for e in events)[-2000:]


def assert_runner_healthy(stack):
    got = run(stack, py("print('still here')\n"))
    assert got["verdict"] == "ok", got


def test_languages(stack):
    r = requests.get(api(stack) + "/runs/languages", headers=USER, timeout=10)
    assert r.status_code == 200
    assert {"python", "c", "ada"} <= {lang["name"] for lang in r.json()["languages"]}


def test_hello_world_python_c_ada_and_a_build_error(stack):
    assert run(stack, py("print('hello')\n"))["verdict"] == "ok"
    c = {
        "language": "c",
        "files": [
            {
                "name": "main.c",
                "content": "#include <stdio.h>\nint main(void){int x;"
                ' if (scanf("%d", &x) != 1) return 2; printf("%d\\n", x * 2); return 0;}\n',
            }
        ],
        "stdin": "21\n",
    }
    got = run(stack, c)
    assert got["verdict"] == "ok" and [s["stage"] for s in got["stages"]] == ["build", "run"], got
    ada = {
        "language": "ada",
        "files": [
            {
                "name": "main.adb",
                "content": "with Ada.Text_IO;\nprocedure Main is\n"
                'begin\n   Ada.Text_IO.Put_Line ("hello");\nend Main;\n',
            }
        ],
    }
    assert run(stack, ada, timeout=60)["verdict"] == "ok"
    broken = {"language": "c", "files": [{"name": "main.c", "content": "int main(void) { return x; }\n"}]}
    got = run(stack, broken)
    assert got["verdict"] == "build_error" and got["stages"][0]["exit_code"] != 0


@pytest.mark.parametrize(
    ("name", "source", "verdicts"),
    [
        ("infinite loop", "while True:\n    pass\n", {"time_limit"}),
        ("sleeping", "import time\ntime.sleep(60)\n", {"time_limit"}),
        (
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            {"time_limit", "runtime_error"},
        ),
        ("2 GB", "x = bytearray(2 * 1024 ** 3)\n", {"memory_limit", "runtime_error"}),
        (
            "100 MB write",
            "with open('big', 'wb') as f:\n    for _ in range(100):\n        f.write(b'x' * 2 ** 20)\n",
            {"runtime_error"},
        ),
    ],
)
def test_limits_are_contained_and_the_runner_survives(stack, name, source, verdicts):
    got = run(stack, py(source))
    assert got["verdict"] in verdicts, (name, got)
    assert got["attempt"] == 1  # the runner did not die with the run
    assert_runner_healthy(stack)


def test_printing_forever_is_output_limit_within_2s(stack):
    got = run(stack, py("while True:\n    print('x' * 100)\n"))
    assert got["verdict"] == "output_limit", (got, output(stack, got["run_id"]))
    stage = got["stages"][-1]
    assert stage["truncated"] is True and stage["wall_ms"] < 2000, stage
    assert_runner_healthy(stack)


def test_no_network_no_environment_no_outside_files(stack):
    port = urlsplit(stack.url).port
    source = (
        "import os, socket, sys\n"
        "bad = []\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    bad.append('tcp')\n"
        "except OSError:\n"
        "    pass\n"
        "if set(os.environ) - {'PATH', 'HOME', 'LANG', 'PWD', 'LC_CTYPE'}:\n"
        "    bad.append('env')\n"
        f"for path in ({os.getcwd()!r}, '/etc/passwd', '/root', {str(stack.var)!r}):\n"
        "    if os.path.exists(path):\n"
        "        bad.append(path)\n"
        "sys.exit(3 if bad else 0)\n"
    )
    got = run(stack, py(source))
    assert got["verdict"] == "ok", got  # exit 3 (runtime_error) would mean something leaked


def _host_pids(cmdline):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        found.append(pid)
            except OSError:
                pass
    return found


def test_a_setsid_child_is_gone_after_the_run(stack):
    source = "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '317'])\nprint('left it')\n"
    got = run(stack, py(source))
    assert got["verdict"] == "ok", got
    wait_until(lambda: not _host_pids(b"sleep\x00317\x00"), timeout=3, message="the setsid sleep to be gone")


@pytest.mark.parametrize("name", ["../x.py", "/etc/passwd", "a\x00b.py", "a\\b.py", ""])
def test_bad_file_names_are_400(stack, name):
    r = requests.post(
        api(stack) + "/runs", json={"language": "python", "files": [{"name": name, "content": ""}]}, headers=USER
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_run", r.text


def test_errors_422_501_413(stack):
    r = requests.post(api(stack) + "/runs", json={**py("1"), "language": "cobol"}, headers=USER, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "unknown_language"
    r = requests.post(api(stack) + "/runs", json=py("1", limits={"wall_s": 9999}), headers=USER, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == "limit_above_max" and r.json()["field"] == "limits.wall_s"
    body = {"language": "ada", "mode": "prove", "files": [{"name": "main.adb", "content": ""}]}
    r = requests.post(api(stack) + "/runs", json=body, headers=USER, timeout=10)
    assert r.status_code == 501 and r.json()["error"] == "mode_unavailable"
    big = py("#" * (2 * 1024 * 1024))
    r = requests.post(api(stack) + "/runs", json=big, headers=USER, timeout=10)
    assert r.status_code == 413 and r.headers["Content-Type"].startswith("application/json")
    # 600 KiB of source passes the gateway (RUNS_BODY_LIMIT_BYTES) and is refused by the 512 KiB rule
    r = requests.post(api(stack) + "/runs", json=py("#" * (600 * 1024)), headers=USER, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_run", r.text


def test_another_users_run_is_404_an_admins_is_visible(stack):
    run_id = submit(stack, py("print(1)\n"))
    assert requests.get(f"{api(stack)}/runs/{run_id}", headers=OTHER, timeout=10).status_code == 404
    assert requests.get(f"{api(stack)}/runs/{run_id}", headers=ADMIN, timeout=10).status_code == 200
    finished(stack, run_id)


def test_download_zip_and_a_name_that_escapes(stack):
    r = requests.post(api(stack) + "/runs/download", json={**py("print(1)\n"), "name": "demo"}, headers=USER)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"] == 'attachment; filename="demo.zip"'
    assert "demo/main.py" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    for body in ({"files": [{"name": "../../etc/x", "content": ""}]}, {**py("1"), "name": "../x"}):
        r = requests.post(api(stack) + "/runs/download", json=body, headers=USER, timeout=10)
        assert r.status_code == 400 and r.json()["error"] == "invalid_run", r.text
    seed = {"files": [{"basename": "../x.py", "contents": ""}]}
    r = requests.post(api(stack) + "/download/", json=seed, headers=USER, timeout=10)
    assert r.status_code == 400


def test_seed_run_program_and_check_output(stack):
    r = requests.post(
        api(stack) + "/run_program/",
        json={"files": [{"basename": "main.py", "contents": "print('one')\nprint('two')\n"}], "mode": "run"},
        headers=USER,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    identifier = r.json()["identifier"]

    def check():
        return requests.post(api(stack) + "/check_output/", json={"identifier": identifier}, headers=USER).json()

    polls = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        polls.append(check())
        if polls[-1]["completed"]:
            break
        time.sleep(0.1)
    assert polls[-1]["completed"] and polls[-1]["status"] == 0, polls[-1]
    r = requests.post(api(stack) + "/check_output/", json={"identifier": "no-such-run"}, headers=USER, timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "run_not_found"


def test_seed_check_output_answers_whole_lines_when_a_line_arrives_in_pieces(stack):
    program = (
        "import sys, time\n"
        "for piece in ('on', 'e\\ntw', 'o\\nthree'):\n"
        "    sys.stdout.write(piece); sys.stdout.flush(); time.sleep(0.3)\n"
    )
    r = requests.post(
        api(stack) + "/run_program/",
        json={"files": [{"basename": "main.py", "contents": program}], "mode": "run"},
        headers=USER,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    check = {"identifier": r.json()["identifier"]}
    lines, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = requests.post(api(stack) + "/check_output/", json=check, headers=USER, timeout=10).json()
        lines += answer["output"]
        if answer["completed"]:
            break
        time.sleep(0.1)
    assert lines == ["one", "two", "three"]  # the last line has no newline: answered once the run ends


def test_output_catch_up_and_the_seed_cursor(stack):
    run_id = submit(stack, py("print('hello')\nimport sys\nprint('oops', file=sys.stderr)\n"))
    assert finished(stack, run_id)["verdict"] == "ok"
    r = requests.get(f"{api(stack)}/runs/{run_id}/output", headers=USER, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["done"] is True
    # an unbuffered print may reach the pipe as 'hello' then '\n' (two events under load)
    text = {s: "".join(e["data"] for e in body["events"] if e["stream"] == s) for s in ("stdout", "stderr")}
    assert text == {"stdout": "hello\n", "stderr": "oops\n"}, body["events"]
    first = body["events"][0]["id"]
    later = requests.get(f"{api(stack)}/runs/{run_id}/output", params={"after": first}, headers=USER).json()
    assert [e["id"] for e in later["events"]] == [e["id"] for e in body["events"][1:]]
    assert requests.get(f"{api(stack)}/runs/{run_id}/output", headers=OTHER, timeout=10).status_code == 404


def test_seed_check_output_returns_each_line_once(stack):
    r = requests.post(
        api(stack) + "/run_program/",
        json={"files": [{"basename": "main.py", "contents": "print('one')\nprint('two')\n"}], "mode": "run"},
        headers=USER,
        timeout=10,
    )
    identifier = r.json()["identifier"]
    finished(stack, identifier)
    check = {"identifier": identifier}
    first = requests.post(api(stack) + "/check_output/", json=check, headers=USER, timeout=10).json()
    assert first["output"] == ["one", "two"] and first["completed"] is True and first["status"] == 0, first
    again = requests.post(api(stack) + "/check_output/", json=check, headers=USER, timeout=10).json()
    assert again["output"] == [] and again["completed"] is True
    # the cursor is the seed route's own: other readers still see everything
    out = requests.get(f"{api(stack)}/runs/{identifier}/output", headers=USER, timeout=10).json()
    assert "".join(e["data"] for e in out["events"] if e["stream"] == "stdout") == "one\ntwo\n"


def test_output_reaches_an_sse_watcher_while_the_program_runs(stack):
    source = "import time\nfor i in range(10):\n    print('tick', i)\n    time.sleep(0.2)\n"
    run_id = submit(stack, py(source, limits={**SMALL, "wall_s": 10}))
    started = time.monotonic()
    seen, end = [], None
    with requests.get(
        f"{api(stack)}/runs/{run_id}/events", headers={**USER, "Accept": "text/event-stream"}, stream=True, timeout=30
    ) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream"), r.text
        kind = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if kind == "end":
                    end = data
                    break
                if data.get("stream") == "stdout":
                    seen.append((time.monotonic() - started, data["data"], state(stack, run_id)["state"]))
            elif not line:
                kind = None
    assert seen and seen[0][2] == "running", seen  # the first output came while the program was running
    # an unbuffered print may reach the pipe in pieces ("tick", " 0\n"): read the text, not one event
    while_running = "".join(text for _at, text, was in seen if was == "running")
    assert "tick 0\n" in while_running, seen
    assert end is not None and end["verdict"] == "ok" and end["state"] == "completed", (end, output(stack, run_id))


def test_cancel_kills_the_program_within_2s(stack):
    run_id = submit(stack, py("import time\ntime.sleep(30)\n", limits={**SMALL, "wall_s": 20}))
    wait_until(lambda: state(stack, run_id)["state"] == "running", timeout=15, message="the run to start")
    time.sleep(0.3)
    asked = time.monotonic()
    r = requests.post(f"{api(stack)}/runs/{run_id}/cancel", headers=USER, timeout=10)
    assert r.status_code == 202, r.text
    got = wait_until(
        lambda: (s := state(stack, run_id))["state"] == "cancelled" and s, timeout=5, message="the run to be cancelled"
    )
    assert time.monotonic() - asked < 2.5, got  # killed within 2 s (+ the polling of this test)
    assert got["verdict"] is None
    assert requests.post(f"{api(stack)}/runs/{run_id}/cancel", headers=OTHER, timeout=10).status_code == 404
    assert_runner_healthy(stack)
