"""Token and move outcomes, counted by the scripts themselves (one HINCRBY of oc:pub:stats),
read by the publish service's /metrics: the moves the gateway answers in Lua count too."""

import requests
from helpers import auth, create_puzzle
from prometheus_client.parser import text_string_to_metric_families


def counts(text):
    """{(sample name, reason or ""): value} of the publish outcome counters."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("oc_publish_"):
            for s in family.samples:
                out[(s.name, s.labels.get("reason", ""))] = s.value
    return out


def grew(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_tokens_and_moves_are_counted_with_their_refusals(make_puzzle, player, client):
    puzzle_id = make_puzzle()
    alice, bob = player("token_1", puzzle_id), player("token_2", puzzle_id)
    before = counts(client.get("/metrics").get_data(as_text=True))
    grant = alice.token(1)
    assert grant.status_code == 200
    assert bob.token(1).status_code == 409  # alice holds the lock
    assert alice.move(1, "not-the-token", 10, 10).status_code == 409
    assert alice.move(1, grant.get_json()["token"], 10, 10).status_code == 204
    after = counts(client.get("/metrics").get_data(as_text=True))
    assert grew(before, after) == {
        ("oc_publish_tokens_granted_total", ""): 1,
        ("oc_publish_tokens_refused_total", "locked"): 1,
        ("oc_publish_moves_refused_total", "token"): 1,
        ("oc_publish_moves_accepted_total", ""): 1,
    }


def test_moves_the_gateway_answers_are_counted_on_the_publish_service(stack):
    puzzle_id = create_puzzle(stack, 2, 2, 800, 600)
    base = f"{stack.url}/newapi/puzzle/{puzzle_id}"
    metrics = f"http://{stack.settings['PUBLISH_ADDR']}/metrics"
    before = counts(requests.get(metrics, timeout=10).text)
    grant = requests.get(f"{base}/piece/1/token/", headers=auth("token_1"), timeout=10)
    assert grant.status_code == 200, grant.text
    move = {"token": grant.json()["token"], "x": 5, "y": 5}
    moved = requests.patch(f"{base}/piece/1/move/", headers=auth("token_1"), json=move, timeout=10)
    assert moved.status_code == 204, moved.text
    again = requests.patch(f"{base}/piece/1/move/", headers=auth("token_1"), json={**move, "x": 9}, timeout=10)
    assert again.status_code == 409  # the token is single-use
    after = counts(requests.get(metrics, timeout=10).text)
    changed = grew(before, after)
    # other tests may share the stack, so at least these
    assert changed.get(("oc_publish_tokens_granted_total", ""), 0) >= 1
    assert changed.get(("oc_publish_moves_accepted_total", ""), 0) >= 1
    assert changed.get(("oc_publish_moves_refused_total", "token"), 0) >= 1
