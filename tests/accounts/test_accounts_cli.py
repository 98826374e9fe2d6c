"""Operator commands through Flask's CLI runner, against the wire server."""

import pytest

from object_challenge.accounts.models import Prefix, User, UserPrefix, hash_token


def invoke(runner, *args):
    return runner.invoke(args=list(args))


def test_user_add_prints_a_generated_token_once(runner, app):
    result = invoke(runner, "user", "add", "dora", "--role", "worker")
    assert result.exit_code == 0, result.output
    token = next(line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith("token: "))
    with app.app_context():
        user = User.objects.get(name="dora")
        assert user.role == "worker" and user.token_hash == hash_token(token)
        assert user.user_id == 6  # after the fixtures' 1..5


def test_user_add_with_given_token_does_not_print_it(runner, app):
    result = invoke(runner, "user", "add", "eve", "--token", "eve-secret")
    assert result.exit_code == 0 and "eve-secret" not in result.output
    with app.app_context():
        assert User.by_token("eve-secret").name == "eve"


def test_user_add_duplicate_fails_with_exit_1(runner):
    result = invoke(runner, "user", "add", "a")
    assert result.exit_code == 1 and "already exists" in result.output


def test_user_add_unknown_role_is_usage_error(runner):
    assert invoke(runner, "user", "add", "x", "--role", "root").exit_code == 2


def test_user_list_never_shows_tokens(runner):
    result = invoke(runner, "user", "list")
    assert result.exit_code == 0
    assert "admin" in result.output and "token_1" not in result.output


def test_revoke_token(runner, app):
    assert invoke(runner, "user", "revoke-token", "b").exit_code == 0
    with app.app_context():
        assert User.by_token("token_2") is None
    assert "revoked" in invoke(runner, "user", "list").output


def test_rotate_token_replaces_the_old_one(runner, app):
    result = invoke(runner, "user", "rotate-token", "c")
    assert result.exit_code == 0
    token = result.output.split("token: ", 1)[1].split()[0]
    with app.app_context():
        assert User.by_token("token_3") is None
        assert User.by_token(token).name == "c"


@pytest.mark.parametrize(
    "args",
    [
        ("user", "revoke-token", "nobody"),
        ("user", "rotate-token", "nobody"),
        ("grant", "nobody", "arvan", "--allow"),
        ("grant", "a", "nope", "--deny"),
        ("grant", "remove", "c", "arvan"),
    ],
)
def test_unknown_names_fail_with_exit_1_and_a_hint(runner, args):
    result = invoke(runner, *args)
    assert result.exit_code == 1
    assert "Error:" in result.output


def test_prefix_add_and_list(runner, app):
    assert invoke(runner, "prefix", "add", "cdn").exit_code == 0
    assert invoke(runner, "prefix", "add", "cdn").exit_code == 1
    listing = invoke(runner, "prefix", "list").output
    assert "cdn" in listing and "a:allow" in listing and "a:deny" in listing
    with app.app_context():
        assert Prefix.objects.get(prefix="cdn").prefix_id == 3


def test_grant_allow_deny_remove(runner, app):
    assert invoke(runner, "grant", "c", "arvan", "--allow").exit_code == 0
    with app.app_context():
        assert UserPrefix.objects.get(user_id=3, prefix_id=1).is_allowed is True
    assert invoke(runner, "grant", "c", "arvan", "--deny").exit_code == 0
    with app.app_context():
        assert UserPrefix.objects.get(user_id=3, prefix_id=1).is_allowed is False
    assert invoke(runner, "grant", "remove", "c", "arvan").exit_code == 0
    with app.app_context():
        assert UserPrefix.objects(user_id=3, prefix_id=1).count() == 0


def test_grant_needs_allow_or_deny(runner):
    assert invoke(runner, "grant", "c", "arvan").exit_code == 2


def test_cli_changes_publish_the_snapshot(runner, redis):
    from object_challenge.core import keys

    before = int(redis.get(keys.GW_VERSION))
    invoke(runner, "prefix", "add", "zz")
    assert int(redis.get(keys.GW_VERSION)) > before
    assert "zz" in redis.get(keys.GW_RULES)


def test_snapshot_version_grows_even_after_redis_lost_it(app, redis):
    """A wiped Redis must not restart the version below one the gateway already saw."""
    from object_challenge.accounts import snapshot
    from object_challenge.core import keys

    with app.app_context():
        seen = snapshot.publish()
        redis.delete(keys.GW_VERSION)
        assert snapshot.publish() > seen
