"""The publish contract through the real gateway: the whole stack as `make run` starts it."""

import http.client
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import redis as redis_lib
import requests
from helpers import auth, create_puzzle, wait_until
from pymongo import MongoClient


def create(stack, rows, cols, width=1000, height=800):
    return create_puzzle(stack, rows, cols, width, height)


class Client:
    """One player's session through the gateway (keep-alive connections); ``edge``: a gateway URL."""

    def __init__(self, edge, token, puzzle_id):
        edge = edge if isinstance(edge, str) else edge.url
        self.base = f"{edge}/newapi/puzzle/{puzzle_id}"
        self.session = requests.Session()
        self.session.headers.update(auth(token))

    def token(self, piece, mark=None):
        return self.session.get(
            f"{self.base}/piece/{piece}/token/", params={"mark": mark} if mark else None, timeout=10
        )

    def move(self, piece, token, x, y, r=0):
        return self.session.patch(
            f"{self.base}/piece/{piece}/move/", json={"token": token, "x": x, "y": y, "r": r}, timeout=10
        )

    def take_and_move(self, piece, x, y):
        grant = self.token(piece)
        assert grant.status_code == 200, grant.text
        return self.move(piece, grant.json()["token"], x, y)

    def state(self):
        return self.session.get(f"{self.base}/", timeout=10).json()

    def solution(self):
        answer = self.session.get(f"{self.base}/solution/", headers=auth("token_admin"), timeout=10)
        assert answer.status_code == 200, answer.text
        return {p["id"]: p for p in answer.json()["pieces"]}


class Stream:
    """An SSE connection: ``open`` returns once the headers are in."""

    def __init__(self, stack, puzzle_id, token="token_1"):
        host, port = stack.url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.conn.request("GET", f"/newapi/puzzle/{puzzle_id}/updates/", headers=auth(token))
        self.response = self.conn.getresponse()

    def event(self):
        """The next ``data:`` payload (comments skipped)."""
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("stream closed")
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    def first_line(self):
        return self.response.readline()

    def close(self):
        self.conn.close()


def test_the_stream_starts_with_ok_after_its_headers(stack):
    puzzle_id = create(stack, 2, 3)
    stream = Stream(stack, puzzle_id)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream"
        assert stream.response.getheader("Cache-Control") == "no-store"
        assert "," not in stream.response.getheader("X-Request-Id")  # exactly one
        assert stream.first_line() == b": ok\n"
    finally:
        stream.close()


def test_a_client_with_its_headers_misses_no_move(stack, edge):
    puzzle_id = create(stack, 2, 3)
    player = Client(edge, "token_1", puzzle_id)
    for attempt in range(5):
        stream = Stream(stack, puzzle_id)
        try:
            answer = player.take_and_move(1 + attempt % 5, 10 * attempt, 20)  # right after the headers
            assert answer.status_code == 204
            event = stream.event()
            assert event["seq"] == int(answer.headers["X-Puzzle-Seq"])
            # the piece, plus any it joined on landing (start positions are random)
            assert 1 + attempt % 5 in [p["id"] for p in event["pieces"]]
            assert all(set(p) == {"id", "x", "y", "r", "group", "immovable"} for p in event["pieces"])
        finally:
            stream.close()


def test_stream_needs_credentials(stack):
    assert requests.get(f"{stack.url}/newapi/puzzle/1/updates/", timeout=5).status_code == 401


def test_stream_of_an_unknown_puzzle_is_404(stack):
    answer = requests.get(f"{stack.url}/newapi/puzzle/987654/updates/", headers=auth("token_1"), timeout=5)
    assert answer.status_code == 404


def test_since_through_the_gateway(stack, edge):
    puzzle_id = create(stack, 2, 3)
    player = Client(edge, "token_2", puzzle_id)
    for n in (1, 2, 3):
        player.take_and_move(n, 100 * n, 600)
    answer = requests.get(f"{stack.url}/newapi/puzzle/{puzzle_id}/updates/?since=1", headers=auth("token_1"), timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["puzzle_id"] == puzzle_id
    assert [u["seq"] for u in body["updates"]] == [2, 3]


def test_fifty_players_racing_for_one_piece_get_exactly_one_token(stack, edge, players):
    puzzle_id = create(stack, 3, 3)
    tokens = players(50)
    barrier = threading.Barrier(50)

    def ask(token):
        session = requests.Session()
        barrier.wait()
        return session.get(
            f"{edge}/newapi/puzzle/{puzzle_id}/piece/4/token/", headers=auth(token), timeout=10
        ).status_code

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(ask, tokens))
    assert sorted(codes) == [200] + [409] * 49


def test_two_hundred_concurrent_moves_equal_their_serial_replay(stack, edge, players):
    """20 players x 10 accepted moves; replayed one by one in seq order on a copy -> the same board."""
    from object_challenge.publish.board import Board

    puzzle_id = create(stack, 8, 8, 1600, 1600)
    tokens = players(20)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    board = Board(
        client,
        {
            "PIECE_LOCK_SECONDS": 5,
            "MOVE_TOKEN_SECONDS": 300,
            "MOVE_RATE_LIMIT": 10**6,
            "MOVE_RATE_WINDOW_SECONDS": 13,
            "MOVE_BAN_SECONDS": 1,
        },
    )
    meta, initial_pieces = board.state(puzzle_id)  # straight from Redis: no cached answer can be older
    solution = Client(stack, "token_1", puzzle_id).solution()
    accepted, lock = [], threading.Lock()

    def play(i):
        player, rng, done, tries = Client(edge, tokens[i], puzzle_id), random.Random(i), 0, 0
        while done < 10:
            tries += 1
            assert tries < 500, "a player could not make 10 moves"
            n = rng.randrange(1, 64)
            grant = player.token(n)
            if grant.status_code in (400, 409):  # immovable now, or someone else holds it
                continue
            assert grant.status_code == 200, grant.text
            x, y = rng.randrange(-20, 1600), rng.randrange(-20, 1600)
            answer = player.move(n, grant.json()["token"], x, y)
            if answer.status_code == 409 and answer.json()["error"] == "piece_immovable":
                continue  # joined the fixed part after the token was granted
            assert answer.status_code == 204, answer.text
            with lock:
                accepted.append((int(answer.headers["X-Puzzle-Seq"]), n, x, y))
            done += 1

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(play, range(20)))
    accepted.sort()
    assert [a[0] for a in accepted] == list(range(1, 201))

    replay_id = 10**9 + puzzle_id
    pieces = [SimpleNamespace(**p, cx=solution[p["id"]]["x"], cy=solution[p["id"]]["y"]) for p in initial_pieces]
    board.load(
        SimpleNamespace(
            puzzle_id=replay_id,
            pieces=pieces,
            status="active",
            seq=0,
            **{k: meta[k] for k in ("rows", "cols", "table_width", "table_height", "piece_width", "piece_height")},
        )
    )
    try:
        for seq, n, x, y in accepted:
            grant = board.token(replay_id, n, 1)
            assert board.move(replay_id, n, 1, grant.token, x, y, 0)["seq"] == seq
        assert board.state(replay_id)[1] == board.state(puzzle_id)[1]
    finally:
        client.delete(*client.keys(f"oc:pub:puzzle:{replay_id}*"))


def test_following_the_solution_completes_the_puzzle(stack, edge):
    puzzle_id = create(stack, 2, 3)
    player = Client(edge, "token_3", puzzle_id)
    solution = player.solution()
    stream = Stream(stack, puzzle_id, "token_2")
    try:
        for n in range(1, 6):
            assert player.take_and_move(n, solution[n]["x"] + 30, solution[n]["y"] - 30).status_code == 204
        events = [stream.event() for _ in range(5)]
    finally:
        stream.close()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].get("status") == "complete"
    state = wait_until(lambda: (s := player.state())["status"] == "complete" and s, timeout=5)
    assert all(p["immovable"] for p in state["pieces"])
    assert {(p["x"], p["y"]) for p in state["pieces"]} == {(s["x"], s["y"]) for s in solution.values()}
    assert player.token(1).status_code == 400
    # written back: at once by the service, within a scheduler pass when the gateway applied it
    wait_until(
        lambda: f"{puzzle_id:>5}  2x3       complete" in stack.manage("puzzle", "list").stdout,
        timeout=10,
        interval=0.5,
        message="the completed puzzle in MongoDB",
    )


def test_move_answers_in_the_contract_order(stack, edge):
    puzzle_id = create(stack, 2, 3)
    url = f"{edge}/newapi/puzzle/{puzzle_id}/piece/1/move/"
    token = Client(edge, "token_1", puzzle_id).token(1).json()["token"]
    assert requests.patch(url, json={"token": token, "x": 1, "y": 1}, timeout=5).status_code == 401
    assert (
        requests.patch(url, json={"token": token, "x": "a", "y": 1}, headers=auth("token_1"), timeout=5).status_code
        == 400
    )
    assert (
        requests.patch(url, json={"token": token, "x": 1, "y": 1}, headers=auth("token_2"), timeout=5).status_code
        == 409
    )
    assert (
        requests.patch(url, json={"token": token, "x": 1, "y": 1}, headers=auth("token_1"), timeout=5).status_code
        == 204
    )


def test_bad_sizes_through_the_gateway_are_400(stack):
    answer = requests.post(
        f"{stack.url}/newapi/puzzle/",
        headers=auth("token_admin"),
        timeout=5,
        json={"rows": 0, "cols": 3, "table_width": 100, "table_height": 100},
    )
    assert answer.status_code == 400


def test_creating_needs_admin_through_the_gateway(stack):
    answer = requests.post(
        f"{stack.url}/newapi/puzzle/",
        headers=auth("token_1"),
        timeout=5,
        json={"rows": 2, "cols": 3, "table_width": 1000, "table_height": 800},
    )
    assert answer.status_code == 403


def test_token_answers_through_the_gateway(stack, edge):
    puzzle_id = create(stack, 2, 3)
    player = Client(edge, "token_1", puzzle_id)
    first = player.token(2, mark="tab-1")
    assert first.status_code == 200
    assert set(first.json()) == {"token", "lock", "expires"}
    assert first.headers["Cache-Control"] == "no-store"
    assert player.token(2, mark="tab-1").json()["token"] == first.json()["token"]
    assert Client(edge, "token_2", puzzle_id).token(2).status_code == 409
    assert player.token(0).status_code == 400
    assert player.token(6).status_code == 404
    assert Client(edge, "token_1", 987654).token(1).status_code == 404
    assert requests.get(f"{edge}/newapi/puzzle/{puzzle_id}/piece/3/token/", timeout=5).status_code == 401


def test_a_refused_move_consumes_nothing_through_the_gateway(stack, edge):
    puzzle_id = create(stack, 2, 3)
    player = Client(edge, "token_1", puzzle_id)
    token = player.token(4).json()["token"]
    for body in ({"token": token, "y": 1}, {"token": token, "x": "left", "y": 1}, {"x": 1, "y": 1}):
        answer = player.session.patch(f"{player.base}/piece/4/move/", json=body, timeout=5)
        assert answer.status_code == 400, answer.text
        if edge == stack.url:  # the gateway gives every request an id
            assert answer.json()["request_id"] == answer.headers["X-Request-Id"]
    assert player.move(4, "not-the-token", 5, 5).status_code == 409
    answer = player.move(4, token, 5, 5)
    assert answer.status_code == 204
    assert player.move(4, token, 5, 5).status_code == 409


def test_a_cached_puzzle_is_never_served_to_anonymous_callers(stack):
    puzzle_id = create(stack, 2, 3)
    url = f"{stack.url}/newapi/puzzle/{puzzle_id}/"
    assert requests.get(url, headers=auth("token_1"), timeout=5).status_code == 200
    second = requests.get(url, headers=auth("token_1"), timeout=5)
    assert second.headers.get("X-Cache-Status") == "HIT"
    assert requests.get(url, timeout=5).status_code == 401


def test_a_forged_user_id_is_no_identity(stack, edge):
    puzzle_id = create(stack, 2, 3)
    forged = {"X-User-Id": "1", "X-User-Role": "admin", "X-Gateway-Secret": "guess"}
    assert (
        requests.get(f"{edge}/newapi/puzzle/{puzzle_id}/piece/1/token/", headers=forged, timeout=5).status_code == 401
    )
    assert requests.get(f"{edge}/newapi/puzzle/{puzzle_id}/updates/", headers=forged, timeout=5).status_code == 401


def test_the_gateway_falls_back_to_the_service_when_redis_lost_its_scripts(stack, edge):
    puzzle_id = create(stack, 2, 3)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    client.script_flush()  # as after a Redis restart: NOSCRIPT for every EVALSHA
    player = Client(edge, "token_1", puzzle_id)
    assert player.take_and_move(1, 30, 40).status_code == 204
    assert player.take_and_move(2, 30, 140).status_code == 204


def test_the_gateway_falls_back_to_the_service_without_published_settings(stack, edge):
    from object_challenge.publish import keys

    puzzle_id = create(stack, 2, 3)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    client.delete(keys.SCRIPTS)
    player = Client(edge, "token_1", puzzle_id)
    assert player.take_and_move(1, 30, 40).status_code == 204
    wait_until(lambda: client.exists(keys.SCRIPTS), timeout=5, message="the scheduler to republish the scripts")


def test_a_board_redis_lost_comes_back_from_mongodb_as_written_back(stack, edge):
    """Write-back by the scheduler (idle puzzle), then the live keys vanish: the last written state returns."""
    from object_challenge.publish import keys

    puzzle_id = create(stack, 2, 3)
    client = redis_lib.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    player = Client(edge, "token_1", puzzle_id)
    player.take_and_move(1, 30, 40)
    player.take_and_move(2, 230, 40)
    seq = int(client.hget(keys.meta(puzzle_id), "seq"))
    # the write-back takes the puzzle off the dirty set first and writes MongoDB after:
    # wait for the document itself to hold the live sequence
    mongo = MongoClient(stack.env["MONGO_URI"], serverSelectionTimeoutMS=5000)
    puzzles = mongo.get_default_database()["puzzles"]
    wait_until(
        lambda: (
            client.zscore(keys.DIRTY, puzzle_id) is None
            and (puzzles.find_one({"puzzle_id": int(puzzle_id)}, {"seq": 1}) or {}).get("seq", -1) >= seq
        ),
        timeout=20,
        message="the scheduler to write the idle puzzle back to MongoDB",
    )
    mongo.close()
    written = client.hgetall(keys.pieces(puzzle_id))
    client.delete(*client.keys(f"{keys.meta(puzzle_id)}*"))  # the live state is gone
    answer = player.take_and_move(3, 430, 40)
    assert answer.status_code == 204
    # the sequence never goes back: a reload after a loss continues above any number handed out
    assert int(answer.headers["X-Puzzle-Seq"]) > 2
    live = client.hgetall(keys.pieces(puzzle_id))
    # piece 3 may join a neighbour on landing (it takes 3's group): leave out 3's group
    group_of_3 = live["3"].split(",")[3]
    moved = {n for n, v in live.items() if v.split(",")[3] == group_of_3}
    assert {n: v for n, v in live.items() if n not in moved} == {n: v for n, v in written.items() if n not in moved}
