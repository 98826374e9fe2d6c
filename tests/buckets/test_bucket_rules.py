"""The admission rule and the naming rules, from the case files the gateway also runs."""

import pytest
from helpers import load_cases

from object_challenge.buckets.names import name_problem
from object_challenge.buckets.rules import admit

RULES = load_cases("bucket_rules.json")
NAMES = load_cases("bucket_names.json")


@pytest.mark.parametrize("case", RULES, ids=[f"u{c['user']}-{c['name']}" for c in RULES])
def test_rule_case(case):
    grants = [tuple(g) for g in case["grants"]]
    assert admit(case["user"], case["name"], grants) is case["expected"], case["why"]


@pytest.mark.parametrize("case", NAMES, ids=[c["name"] or "<empty>" for c in NAMES])
def test_name_case(case):
    problem = name_problem(case["name"])
    assert (problem is None) is case["valid"], problem
