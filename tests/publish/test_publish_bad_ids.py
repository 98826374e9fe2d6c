"""Huge numbers in puzzle routes are a 400 naming the problem, never a 500; the puzzle list."""

import pytest
from helpers import auth

HUGE = ("9223372036854775808", "99999999999999999999999", str(2**64))


@pytest.mark.parametrize("number", HUGE)
@pytest.mark.parametrize(
    "method,path,code",
    [
        ("GET", "/newapi/puzzle/{n}/", "bad_puzzle_id"),
        ("GET", "/newapi/puzzle/{n}/solution/", "bad_puzzle_id"),
        ("GET", "/newapi/puzzle/{n}/updates/?since=0", "bad_puzzle_id"),
        ("GET", "/newapi/puzzle/{n}/piece/1/token/", "bad_puzzle_id"),
        ("PATCH", "/newapi/puzzle/{n}/piece/1/move/", "bad_puzzle_id"),
        ("GET", "/newapi/puzzle/1/piece/{n}/token/", "bad_piece"),
        ("GET", "/newapi/puzzle/1/updates/?since={n}", "bad_since"),
    ],
)
def test_numbers_of_2_63_or_more_are_400_naming_the_problem(client, method, path, code, number):
    answer = client.open(
        path.format(n=number), method=method, headers=auth("token_admin"), json={"token": "t", "x": 1, "y": 1}
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["error"] == code and "2^63" in body["message"]


def test_the_largest_id_is_a_plain_404(client):
    answer = client.get(f"/newapi/puzzle/{2**63 - 1}/", headers=auth("token_1"))
    assert answer.status_code == 404 and answer.get_json()["error"] == "puzzle_not_found"


def test_the_puzzle_list_shows_the_playable_puzzles_page_by_page(client, make_puzzle):
    ids = [make_puzzle() for _ in range(3)]
    answer = client.get("/newapi/puzzle/", headers=auth("token_1"))
    assert answer.status_code == 200
    assert [p["puzzle_id"] for p in answer.get_json()["puzzles"]] == ids
    assert answer.get_json()["next_after"] is None
    first = client.get("/newapi/puzzle/?limit=2", headers=auth("token_1")).get_json()
    assert [p["puzzle_id"] for p in first["puzzles"]] == ids[:2] and first["next_after"] == ids[1]
    rest = client.get(f"/newapi/puzzle/?limit=2&after={first['next_after']}", headers=auth("token_1")).get_json()
    assert [p["puzzle_id"] for p in rest["puzzles"]] == ids[2:]
    assert client.get("/newapi/puzzle/?limit=0", headers=auth("token_1")).status_code == 400
    assert client.get(f"/newapi/puzzle/?after={2**64}", headers=auth("token_1")).status_code == 400
    assert client.get("/newapi/puzzle/").status_code == 401
