"""User names and prefixes are validated; delete/remove exist; a store that is down makes a
command change nothing and say so in one line; manage.py's own commands (help, shell, runserver)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from object_challenge.accounts.models import Prefix, User, UserPrefix
from object_challenge.core import keys

ROOT = Path(__file__).resolve().parents[2]


def invoke(runner, *args):
    return runner.invoke(args=list(args))


@pytest.mark.parametrize("name", ["bad\r\nX-User-Role: admin", "with space", "é", "", ".dot", "_x", "x" * 65, "a/b"])
def test_user_add_refuses_names_outside_the_documented_charset(runner, app, name):
    result = invoke(runner, "user", "add", name)
    assert result.exit_code == 1 and "1 to 64 ASCII letters" in result.output
    with app.app_context():
        assert User.objects(name=name).count() == 0


@pytest.mark.parametrize("name", ["dora", "host-1.worker_2", "A" * 64])
def test_user_add_accepts_names_inside_it(runner, name):
    assert invoke(runner, "user", "add", name).exit_code == 0


def test_fixtures_with_a_bad_name_are_refused(runner, tmp_path):
    (tmp_path / "users.json").write_text(json.dumps([{"user_id": 9, "name": "bad name", "token": "t9"}]))
    result = invoke(runner, "init", "--fixtures", str(tmp_path))
    assert result.exit_code == 1 and "users.json: user_id 9" in result.output and "not allowed" in result.output


def test_an_existing_bad_name_is_left_out_of_the_snapshot_with_a_message(runner, app, redis):
    with app.app_context():
        user = User(user_id=77, name="old\r\nname", role="user")
        user.set_token("tok-old")
        user.save(force_insert=True)
    result = invoke(runner, "init")
    assert "refused: user id 77" in result.output
    assert all("old" not in v for v in redis.hvals(keys.GW_TOKENS))
    assert invoke(runner, "user", "delete", "old\r\nname").exit_code == 0


def test_user_delete_removes_the_user_and_grants(runner, app):
    assert invoke(runner, "user", "delete", "b").exit_code == 0
    with app.app_context():
        assert User.objects(name="b").count() == 0 and UserPrefix.objects(user_id=2).count() == 0
    assert invoke(runner, "user", "delete", "b").exit_code == 1


@pytest.mark.parametrize("prefix", ["BAD PREFIX", "Upper", "a..b", "xn--x", ".x", "", "x" * 64, "ä"])
def test_prefix_add_follows_the_bucket_naming_rules(runner, app, prefix):
    result = invoke(runner, "prefix", "add", prefix)
    assert result.exit_code == 1 and "bucket naming rules" in result.output
    with app.app_context():
        assert Prefix.objects(prefix=prefix).count() == 0


def test_valid_prefixes_make_valid_bucket_names():
    from object_challenge.accounts.models import prefix_problem
    from object_challenge.buckets.names import name_problem

    for prefix in ("a", "ab-", "x.y", "q1", "z" * 60):
        assert prefix_problem(prefix) is None and name_problem(prefix + "00") is None


def test_prefix_remove_removes_its_grants(runner, app):
    result = invoke(runner, "prefix", "remove", "arvan")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert Prefix.objects(prefix="arvan").count() == 0
    assert invoke(runner, "prefix", "remove", "arvan").exit_code == 1


# -- a store that is down: one line, nothing changed ------------------------------------------
def _dead_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(*args, env=None, input=None, timeout=60):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


def test_user_add_with_redis_down_changes_nothing_and_says_so_in_one_line(app, config):
    env = {"MONGO_URI": config.MONGO_URI, "REDIS_URL": f"redis://127.0.0.1:{_dead_port()}/0", "APP_ENV": "testing"}
    result = _manage("user", "add", "ghost", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "redis is not answering" in result.stderr and "nothing was changed" in result.stderr
    assert len((result.stdout + result.stderr).strip().splitlines()) == 1
    assert result.stderr.count("not answering") == 1 and "the command stopped" not in result.stderr  # said once
    with app.app_context():
        assert User.objects(name="ghost").count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ("user", "rotate-token", "a"),
        ("user", "revoke-token", "a"),
        ("grant", "a", "pushe", "--allow"),
        ("grant", "remove", "b", "pushe"),
    ],
)
def test_a_change_redis_refuses_to_publish_is_undone_and_said_in_one_line(app, runner, monkeypatch, args):
    """Redis stops answering after the checks, while the change is published: MongoDB is
    put back (a rotated token that was never printed would lock the user out)."""
    import redis as redis_lib

    from object_challenge.accounts import snapshot

    def state():
        with app.app_context():
            users = {u.name: u.token_hash for u in User.objects}
            grants = {(g.user_id, g.prefix_id, g.is_allowed) for g in UserPrefix.objects}
            return users, grants

    before = state()

    def refused():
        raise redis_lib.ConnectionError("Connection refused")

    monkeypatch.setattr(snapshot, "publish", refused)
    result = invoke(runner, *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "nothing was changed" in result.output
    assert state() == before


def test_any_command_with_a_store_down_is_one_line_without_traceback(config):
    env = {"MONGO_URI": config.MONGO_URI, "REDIS_URL": f"redis://127.0.0.1:{_dead_port()}/0", "APP_ENV": "testing"}
    result = _manage("publish-snapshot", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: redis is not answering")


# -- manage.py itself ---------------------------------------------------------------------
def test_help_lists_only_documented_commands():
    result = _manage("--help")
    assert result.returncode == 0
    for flask_option in ("--env-file", "--app", "--debug", "python-dotenv"):
        assert flask_option not in result.stdout
    commands = result.stdout.split("Commands:", 1)[1].split()
    listed = {line.split()[0] for line in result.stdout.split("Commands:", 1)[1].strip().splitlines()}
    documented = "".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    assert "run" not in listed and "routes" not in listed and commands
    for name in listed:
        assert f"manage.py {name}" in documented, f"manage.py {name} is listed but not documented"


def test_shell_runs_one_command_and_piped_code_without_banner(app, config):
    env = {"MONGO_URI": config.MONGO_URI, "REDIS_URL": config.REDIS_URL, "APP_ENV": "testing"}
    one = _manage("shell", "-c", "print('users', User.objects.count())", env=env)
    assert one.returncode == 0 and one.stdout.strip() == "users 5", one.stdout + one.stderr
    piped = _manage("shell", env=env, input="print(1 + 1)\n")
    assert piped.returncode == 0 and piped.stdout.strip() == "2", piped.stdout + piped.stderr


def test_runserver_serves(config):
    port = _dead_port()
    env = {**os.environ, "MONGO_URI": config.MONGO_URI, "REDIS_URL": config.REDIS_URL, "APP_ENV": "testing"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=10)
