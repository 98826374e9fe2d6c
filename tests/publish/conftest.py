"""Publish fixtures: puzzles generated in-process (the artist run directly, no worker)."""

from pathlib import Path

import pytest
from helpers import auth

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_puzzle(app, client):
    """``make_puzzle(rows, cols, width, height, seed=1)`` -> puzzle id, pieces generated."""
    from object_challenge.publish import artist

    def make(rows=2, cols=3, table_width=1000, table_height=800, seed=1):
        answer = client.post(
            "/newapi/puzzle/",
            headers=auth("token_admin"),
            json={"rows": rows, "cols": cols, "table_width": table_width, "table_height": table_height},
        )
        assert answer.status_code == 202, answer.get_json()
        puzzle_id = answer.get_json()["puzzle_id"]
        with app.app_context():
            artist.create_pieces(puzzle_id, seed=seed)
        return puzzle_id

    return make


class Player:
    """One player's calls on one puzzle, through the Flask test client."""

    def __init__(self, client, token, puzzle_id):
        self.client, self.headers, self.puzzle_id = client, auth(token), puzzle_id

    def url(self, piece, what):
        return f"/newapi/puzzle/{self.puzzle_id}/piece/{piece}/{what}/"

    def token(self, piece, mark=None):
        query = {"mark": mark} if mark is not None else {}
        return self.client.get(self.url(piece, "token"), headers=self.headers, query_string=query)

    def move(self, piece, token, x, y, r=0):
        body = {"token": token, "x": x, "y": y}
        if r is not None:
            body["r"] = r
        return self.client.patch(self.url(piece, "move"), headers=self.headers, json=body)

    def take_and_move(self, piece, x, y, r=0):
        grant = self.token(piece)
        assert grant.status_code == 200, grant.get_json()
        return self.move(piece, grant.get_json()["token"], x, y, r)

    def puzzle(self):
        answer = self.client.get(f"/newapi/puzzle/{self.puzzle_id}/", headers=self.headers)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    def pieces(self):
        return {p["id"]: p for p in self.puzzle()["pieces"]}

    def solution(self):
        answer = self.client.get(f"/newapi/puzzle/{self.puzzle_id}/solution/", headers=auth("token_admin"))
        assert answer.status_code == 200, answer.get_json()
        return {p["id"]: p for p in answer.get_json()["pieces"]}

    def updates(self, since=0):
        answer = self.client.get(
            f"/newapi/puzzle/{self.puzzle_id}/updates/", headers=self.headers, query_string={"since": since}
        )
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["updates"]


@pytest.fixture
def player(client):
    return lambda token, puzzle_id: Player(client, token, puzzle_id)


# -- through the gateway (the session-wide ``stack`` of tests/conftest.py) -------


@pytest.fixture(scope="session")
def players(stack):
    """``players(n)`` -> n tokens of distinct users on the stack (made once, in one process)."""
    import requests
    from helpers import wait_until

    made = []

    def make(n):
        names = [f"player{i:03d}" for i in range(n)]
        missing = [name for name in names if name not in made]
        if missing:
            stack.add_users(missing)
            made.extend(missing)
            last = "tok_" + missing[-1]
            wait_until(
                lambda: requests.get(f"{stack.url}/newapi/whoami", headers=auth(last), timeout=5).status_code == 200,
                timeout=10,
                message="new tokens at the edge",
            )
        return ["tok_" + name for name in names]

    return make


@pytest.fixture(params=["service", "gateway_lua"])
def edge(request, stack):
    """Where token/move requests are answered: straight at the publish service (which
    authenticates the token itself), or through the gateway, whose oc.moves answers them."""
    if request.param == "service":
        return f"http://{stack.settings['PUBLISH_ADDR']}"
    return stack.url
