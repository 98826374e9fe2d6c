"""The gateway's Lua rule, naming check, credential parser, keys, limiter and
settings, run inside a real nginx on the same case files as the Python side."""

import json

import pytest
from helpers import load_cases
from lua_harness import LuaHarness, rendered_settings

from object_challenge.accounts.identity import parse_authorization
from object_challenge.buckets.names import name_problem
from object_challenge.buckets.rules import admit
from object_challenge.core import keys as py_keys


@pytest.fixture(scope="module")
def lua():
    harness = LuaHarness().start()
    yield harness
    harness.stop()


def run(lua, what, payload):
    return lua.run(what, payload)


def test_lua_rule_agrees_with_every_rule_case(lua):
    cases = load_cases("bucket_rules.json")
    results = run(lua, "rules", cases)
    wrong = [
        (c["user"], c["name"], c.get("why")) for c, got in zip(cases, results, strict=True) if got != c["expected"]
    ]
    assert not wrong


def test_python_rule_agrees_with_the_lua_rule_on_every_case(lua):
    cases = load_cases("bucket_rules.json")
    results = run(lua, "rules", cases)
    assert results == [admit(c["user"], c["name"], [tuple(g) for g in c["grants"]]) for c in cases]


def test_lua_naming_check_agrees_with_every_name_case(lua):
    cases = load_cases("bucket_names.json")
    results = run(lua, "names", cases)
    wrong = [c["name"] for c, got in zip(cases, results, strict=True) if got != c["valid"]]
    assert not wrong


def test_lua_and_python_naming_checks_agree(lua):
    names = [c["name"] for c in load_cases("bucket_names.json")] + [
        "1234.1.1.1",
        "999.999.999.999",
        "a.b.c.d",
        "xn-a",
        "abc-s3alias",
        "s3alias",
        "a-",
        "0ab",
        "ab0",
        "a" * 3,
        "a.b",
        "a..b",
        "a-.b",
        "sthree-x",
    ]
    results = run(lua, "names", [{"name": n} for n in names])
    assert results == [name_problem(n) is None for n in names]


CREDENTIALS = [
    "Token token_1",
    "token token_1",
    "Token  token_1 ",
    "Basic dG9rZW5fd29ya2VyOg==",
    "Basic dG9rZW5fd29ya2VyOnNlY3JldA==",
    None,
    "",
    "Token",
    "Token a b",
    "Bearer token_1",
    "Basic !!!",
    "Basic Og==",
    "Token\ttab",
]


def test_lua_credential_parser_agrees_with_identity_py(lua):
    results = run(lua, "credentials", CREDENTIALS)
    expected = [parse_authorization(h) for h in CREDENTIALS]
    assert [None if r.startswith("!") else r for r in results] == expected


def test_a_repeated_authorization_header_is_malformed(lua):
    assert run(lua, "credentials", [["Token a", "Token b"]]) == ["!malformed"]


def test_lua_and_python_build_the_same_snapshot_keys(lua):
    got = run(lua, "keys", {"puzzle": 7, "piece": 3, "player": "5"})
    assert (got["tokens"], got["rules"], got["version"]) == (py_keys.GW_TOKENS, py_keys.GW_RULES, py_keys.GW_VERSION)


def test_the_rendered_settings_have_every_setting_lua_requires(lua):
    assert run(lua, "settings", json.dumps(rendered_settings())) == {"ok": True}


@pytest.mark.parametrize("missing", ["redis", "status_codes", "auth_ttl"])
def test_lua_refuses_settings_the_renderer_did_not_pass(lua, missing):
    settings = rendered_settings()
    del settings[missing]
    answer = run(lua, "settings", json.dumps(settings))
    assert answer["ok"] is False and missing in answer["error"]


@pytest.mark.parametrize("burst", [1, 5, 100])
def test_limiter_admits_exactly_the_burst_at_once(lua, burst):
    assert run(lua, "limits", {"rps": 0.001, "burst": burst, "n": burst + 20}) == {"admitted": burst}
