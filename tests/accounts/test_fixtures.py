"""`manage.py init`: fixtures as in the BRIEF, idempotent, another set with --fixtures."""

import json

from object_challenge.accounts.models import Prefix, User, UserPrefix


def counts():
    return User.objects.count(), Prefix.objects.count(), UserPrefix.objects.count()


def test_fixtures_hold_the_seed_data(app):
    with app.app_context():
        assert {(u.user_id, u.name, u.role) for u in User.objects} == {
            (1, "a", "user"),
            (2, "b", "user"),
            (3, "c", "user"),
            (4, "worker", "worker"),
            (5, "admin", "admin"),
        }
        assert User.by_token("token_1").name == "a" and User.by_token("token_admin").role == "admin"
        assert {(p.prefix_id, p.prefix) for p in Prefix.objects} == {(1, "arvan"), (2, "pushe")}
        assert {(g.user_id, g.prefix_id, g.is_allowed) for g in UserPrefix.objects} == {
            (1, 1, True),
            (1, 2, False),
            (2, 1, True),
            (2, 2, True),
        }


def test_tokens_are_stored_only_as_hashes(app):
    with app.app_context():
        raw = list(User._get_collection().find({}, {"_id": 0}))
    values = {str(v) for doc in raw for v in doc.values()}
    assert raw and not values & {"token_1", "token_2", "token_3", "token_worker", "token_admin"}


def test_init_twice_changes_nothing(runner, app):
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        before = counts()
        docs = sorted(json.dumps(d, default=str) for d in User._get_collection().find())
    second = runner.invoke(args=["init"])
    assert second.exit_code == 0 and "0 created" in second.output
    with app.app_context():
        assert counts() == before == (5, 2, 4)
        assert sorted(json.dumps(d, default=str) for d in User._get_collection().find()) == docs


def test_init_keeps_operator_changes(runner, app):
    runner.invoke(args=["grant", "a", "pushe", "--allow"])
    runner.invoke(args=["init"])
    with app.app_context():
        assert UserPrefix.objects.get(user_id=1, prefix_id=2).is_allowed is True


def test_init_loads_another_fixture_set(runner, app, tmp_path):
    (tmp_path / "users.json").write_text(json.dumps([{"user_id": 10, "name": "zed", "token": "tz"}]))
    (tmp_path / "prefixes.json").write_text(json.dumps([{"prefix_id": 7, "prefix": "zed"}]))
    result = runner.invoke(args=["init", "--fixtures", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert User.by_token("tz").user_id == 10
        assert Prefix.objects.get(prefix="zed").prefix_id == 7
    added = runner.invoke(args=["user", "add", "next"])
    assert "(id 11" in added.output


def test_init_with_missing_directory_fails_clearly(runner):
    result = runner.invoke(args=["init", "--fixtures", "/nonexistent/dir"])
    assert result.exit_code == 1 and "no such fixtures directory" in result.output


def test_init_with_broken_file_fails_clearly(runner, tmp_path):
    (tmp_path / "users.json").write_text("{broken")
    result = runner.invoke(args=["init", "--fixtures", str(tmp_path)])
    assert result.exit_code == 1 and "not valid JSON" in result.output
