"""The publish contract in-process: create, read, token, move, joins, completion, catch-up."""

import json

import pytest
from helpers import auth


def test_create_needs_admin(client):
    answer = client.post(
        "/newapi/puzzle/", headers=auth("token_1"), json={"rows": 2, "cols": 2, "table_width": 500, "table_height": 500}
    )
    assert answer.status_code == 403


def test_create_needs_credentials(client):
    answer = client.post("/newapi/puzzle/", json={"rows": 2, "cols": 2, "table_width": 500, "table_height": 500})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"rows": 0, "cols": 2, "table_width": 500, "table_height": 500},
        {"rows": 1, "cols": 1, "table_width": 500, "table_height": 500},
        {"rows": "2", "cols": 2, "table_width": 500, "table_height": 500},
        {"rows": 2.5, "cols": 2, "table_width": 500, "table_height": 500},
        {"rows": True, "cols": 2, "table_width": 500, "table_height": 500},
        {"rows": 2, "cols": 2, "table_width": 500},
        {"rows": 2, "cols": 2, "table_width": -5, "table_height": 500},
        {"rows": 100, "cols": 100, "table_width": 500, "table_height": 500},
        {"rows": 101, "cols": 2, "table_width": 50000, "table_height": 50000},
        [1, 2],
    ],
)
def test_bad_sizes_are_400(client, body):
    answer = client.post("/newapi/puzzle/", headers=auth("token_admin"), json=body)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"] == "bad_size"


def test_create_queues_a_puzzle_create_job(app, client):
    answer = client.post(
        "/newapi/puzzle/",
        headers=auth("token_admin"),
        json={"rows": 2, "cols": 3, "table_width": 1000, "table_height": 800},
    )
    assert answer.status_code == 202
    body = answer.get_json()
    job = client.get(f"/newapi/jobs/{body['job_id']}", headers=auth("token_admin")).get_json()
    assert job["tasks"] == [{"module": "puzzle_create", "data": {"puzzle_id": body["puzzle_id"]}}]
    state = client.get(f"/newapi/puzzle/{body['puzzle_id']}/", headers=auth("token_1")).get_json()
    assert (state["status"], state["pieces"]) == ("generating", [])


def test_token_on_a_generating_puzzle_is_409(client):
    answer = client.post(
        "/newapi/puzzle/",
        headers=auth("token_admin"),
        json={"rows": 2, "cols": 3, "table_width": 1000, "table_height": 800},
    )
    puzzle_id = answer.get_json()["puzzle_id"]
    assert client.get(f"/newapi/puzzle/{puzzle_id}/piece/1/token/", headers=auth("token_1")).status_code == 409


def test_catch_up_on_a_generating_puzzle_is_409(client):
    answer = client.post(
        "/newapi/puzzle/",
        headers=auth("token_admin"),
        json={"rows": 2, "cols": 3, "table_width": 1000, "table_height": 800},
    )
    puzzle_id = answer.get_json()["puzzle_id"]
    caught_up = client.get(f"/newapi/puzzle/{puzzle_id}/updates/?since=0", headers=auth("token_1"))
    assert (caught_up.status_code, caught_up.get_json()["error"]) == (409, "puzzle_generating")


def test_generated_pieces(make_puzzle, player):
    p = player("token_1", make_puzzle(rows=3, cols=4, table_width=1200, table_height=900))
    state = p.puzzle()
    assert state["status"] == "active"
    assert (state["rows"], state["cols"], state["table_width"], state["table_height"]) == (3, 4, 1200, 900)
    assert [piece["id"] for piece in state["pieces"]] == list(range(12))
    solution = p.solution()
    size = state["piece_width"]
    for piece in state["pieces"]:
        assert 0 <= piece["x"] <= 1200 - size and 0 <= piece["y"] <= 900 - size
        assert piece["immovable"] == (piece["id"] == 0)
    assert (state["pieces"][0]["x"], state["pieces"][0]["y"]) == (solution[0]["x"], solution[0]["y"])
    assert solution[5]["x"] - solution[4]["x"] == size and solution[4]["y"] - solution[0]["y"] == size


def test_artist_is_idempotent(app, make_puzzle, player):
    from object_challenge.publish import artist

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(3, 10, 10)
    before = p.pieces()
    with app.app_context():
        artist.puzzle_create({"puzzle_id": puzzle_id}, {})
    assert p.pieces() == before


def test_unknown_puzzle_and_piece_are_404(make_puzzle, player):
    puzzle_id = make_puzzle()
    assert player("token_1", 999).token(1).status_code == 404
    assert player("token_1", puzzle_id).token(6).status_code == 404
    assert player("token_1", 999).move(1, "x", 1, 1).status_code == 404


def test_token_answer(make_puzzle, player):
    answer = player("token_1", make_puzzle()).token(1, mark="tab-1")
    assert answer.status_code == 200
    body = answer.get_json()
    assert set(body) == {"token", "lock", "expires"}
    assert 4 <= body["expires"] - body["lock"] - 290 <= 6


def test_token_needs_credentials(make_puzzle, client):
    assert client.get(f"/newapi/puzzle/{make_puzzle()}/piece/1/token/").status_code == 401


def test_another_player_gets_409_while_locked(make_puzzle, player):
    puzzle_id = make_puzzle()
    assert player("token_1", puzzle_id).token(1).status_code == 200
    assert player("token_2", puzzle_id).token(1).status_code == 409


def test_the_holder_asking_again_gets_the_same_token(make_puzzle, player):
    p = player("token_1", make_puzzle())
    first, again = p.token(1, mark="a"), p.token(1, mark="a")
    assert again.status_code == 200
    assert again.get_json()["token"] == first.get_json()["token"]


def test_immovable_piece_is_400(make_puzzle, player):
    answer = player("token_1", make_puzzle()).token(0)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "piece_immovable"


def test_move_is_204_and_moves_the_piece(make_puzzle, player):
    p = player("token_1", make_puzzle())
    answer = p.take_and_move(5, 20, 30)
    assert answer.status_code == 204
    assert answer.headers["X-Puzzle-Seq"] == "1"
    assert {k: p.pieces()[5][k] for k in ("x", "y", "r")} == {"x": 20, "y": 30, "r": 0}


def test_move_frees_the_lock(make_puzzle, player):
    puzzle_id = make_puzzle()
    player("token_1", puzzle_id).take_and_move(5, 20, 30)
    assert player("token_2", puzzle_id).token(5).status_code == 200


def test_token_is_single_use(make_puzzle, player):
    p = player("token_1", make_puzzle())
    token = p.token(5).get_json()["token"]
    assert p.move(5, token, 20, 30).status_code == 204
    again = p.move(5, token, 40, 40)
    assert again.status_code == 409
    assert again.get_json()["error"] == "token_invalid"


def test_someone_elses_token_is_409(make_puzzle, player):
    puzzle_id = make_puzzle()
    token = player("token_1", puzzle_id).token(5).get_json()["token"]
    assert player("token_2", puzzle_id).move(5, token, 20, 30).status_code == 409
    assert player("token_1", puzzle_id).move(5, token, 20, 30).status_code == 204


def test_token_for_another_piece_is_409(make_puzzle, player):
    p = player("token_1", make_puzzle())
    token = p.token(5).get_json()["token"]
    assert p.move(4, token, 20, 30).status_code == 409
    assert p.move(5, token, 20, 30).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"y": 1},
        {"x": "left", "y": 1},
        {"x": 1, "y": None},
        {"x": True, "y": 1},
        {"x": 1, "y": 1, "r": "up"},
        {"x": float("nan"), "y": 1},
    ],
)
def test_bad_coordinates_are_400_and_consume_nothing(make_puzzle, player, client, body):
    p = player("token_1", make_puzzle())
    token = p.token(5).get_json()["token"]
    answer = client.patch(p.url(5, "move"), headers=p.headers, json={"token": token, **body})
    assert answer.status_code == 400
    assert p.move(5, token, 20, 30).status_code == 204


def test_bad_coordinates_are_400_even_with_a_bad_token(make_puzzle, player, client):
    p = player("token_1", make_puzzle())
    answer = client.patch(p.url(5, "move"), headers=p.headers, json={"token": "nope", "x": "a", "y": 1})
    assert answer.status_code == 400


def test_no_credentials_on_move_is_401_before_400(make_puzzle, client):
    answer = client.patch(f"/newapi/puzzle/{make_puzzle()}/piece/5/move/", json={"x": "a"})
    assert answer.status_code == 401


def test_expired_token_is_409(app, make_puzzle, player, redis):
    from object_challenge.publish import keys

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    token = p.token(5).get_json()["token"]
    redis.delete(keys.token(puzzle_id, 5))  # what PX does after MOVE_TOKEN_SECONDS
    assert p.move(5, token, 20, 30).status_code == 409


def test_positions_are_clamped_to_the_table(make_puzzle, player):
    p = player("token_1", make_puzzle(table_width=1000, table_height=800))
    size = p.puzzle()["piece_width"]
    p.take_and_move(5, -500, 5000)
    assert (p.pieces()[5]["x"], p.pieces()[5]["y"]) == (0, 800 - size)
    p.take_and_move(5, 10**9, -1)
    assert (p.pieces()[5]["x"], p.pieces()[5]["y"]) == (1000 - size, 0)


def test_dropped_near_its_neighbour_joins_and_snaps(make_puzzle, player):
    p = player("token_1", make_puzzle(rows=2, cols=3))
    size = p.puzzle()["piece_width"]
    p.take_and_move(4, 300, 300)
    p.take_and_move(5, 300 + size + 49, 300 - 49)  # within 50 px on each axis
    pieces = p.pieces()
    assert (pieces[5]["x"], pieces[5]["y"]) == (300 + size, 300)
    assert pieces[5]["group"] == pieces[4]["group"]
    assert not pieces[5]["immovable"]


def test_51_px_away_does_not_join(make_puzzle, player):
    p = player("token_1", make_puzzle(rows=2, cols=3))
    size = p.puzzle()["piece_width"]
    p.take_and_move(4, 300, 300)
    p.take_and_move(5, 300 + size + 51, 300)
    pieces = p.pieces()
    assert pieces[5]["group"] != pieces[4]["group"]


def test_a_group_moves_together(make_puzzle, player):
    p = player("token_1", make_puzzle(rows=2, cols=3))
    size = p.puzzle()["piece_width"]
    p.take_and_move(4, 300, 300)
    p.take_and_move(5, 300 + size, 300)
    p.take_and_move(4, 100, 150)
    pieces = p.pieces()
    assert (pieces[4]["x"], pieces[4]["y"], pieces[5]["x"], pieces[5]["y"]) == (100, 150, 100 + size, 150)


def test_joining_the_fixed_piece_makes_the_group_immovable(make_puzzle, player):
    p = player("token_1", make_puzzle(rows=2, cols=3))
    solution = p.solution()
    p.take_and_move(4, 300, 300)
    size = p.puzzle()["piece_width"]
    p.take_and_move(3, 300 - size, 300)  # 3 and 4 form a group
    p.take_and_move(4, solution[4]["x"] + 20, solution[4]["y"] - 30)  # the group under piece 0
    pieces = p.pieces()
    for n in (0, 3, 4):
        assert pieces[n]["immovable"] and (pieces[n]["x"], pieces[n]["y"]) == (solution[n]["x"], solution[n]["y"])
        assert pieces[n]["group"] == pieces[0]["group"]
    assert p.token(3).status_code == 400


def test_following_the_solution_completes_the_puzzle(make_puzzle, player, app):
    from object_challenge.publish.models import Puzzle

    puzzle_id = make_puzzle(rows=3, cols=3)
    p = player("token_1", puzzle_id)
    solution = p.solution()
    for n in range(1, 9):
        assert p.take_and_move(n, solution[n]["x"] + 7, solution[n]["y"] - 7).status_code == 204
    state = p.puzzle()
    assert state["status"] == "complete"
    assert all(piece["immovable"] for piece in state["pieces"])
    assert p.token(1).status_code == 400
    with app.app_context():  # written back at once on completion
        doc = Puzzle.objects(puzzle_id=puzzle_id).first()
        assert (doc.status, doc.seq) == ("complete", 8)


def test_updates_since(make_puzzle, player):
    p = player("token_1", make_puzzle())
    for n, x in ((1, 10), (2, 20), (3, 30)):
        p.take_and_move(n, x, 700)
    updates = p.updates(0)
    assert [u["seq"] for u in updates] == [1, 2, 3]
    assert updates[1]["pieces"] == [{"id": 2, "x": 20, "y": 700, "r": 0, "group": 2, "immovable": False}]
    assert [u["seq"] for u in p.updates(2)] == [3]
    assert p.updates(3) == []


def test_updates_since_must_be_a_number(make_puzzle, client):
    answer = client.get(f"/newapi/puzzle/{make_puzzle()}/updates/?since=x", headers=auth("token_1"))
    assert answer.status_code == 400


def test_updates_of_unknown_puzzle_is_404(client):
    assert client.get("/newapi/puzzle/77/updates/?since=0", headers=auth("token_1")).status_code == 404


def test_puzzle_answer_is_cacheable_briefly(make_puzzle, client):
    answer = client.get(f"/newapi/puzzle/{make_puzzle()}/", headers=auth("token_1"))
    assert answer.headers["Cache-Control"] == "private, max-age=1"


def test_the_service_streams_too_when_called_directly(make_puzzle, player, client):
    """The gateway's fallback (and direct callers): SSE from the service, ': ok' once subscribed."""
    puzzle_id = make_puzzle()
    answer = client.get(f"/newapi/puzzle/{puzzle_id}/updates/", headers=auth("token_2"), buffered=False)
    assert answer.status_code == 200
    assert answer.mimetype == "text/event-stream"
    chunks = iter(answer.response)
    assert next(chunks) == b": ok\n\n"
    player("token_1", puzzle_id).take_and_move(2, 40, 50)
    line = next(chunks).decode()
    assert line.startswith("data: ") and line.endswith("\n\n")
    assert json.loads(line[6:])["seq"] == 1
    answer.close()


def test_the_service_stream_of_an_unknown_puzzle_is_404(client):
    assert client.get("/newapi/puzzle/4242/updates/", headers=auth("token_2")).status_code == 404
