"""Move rate and bans; write-back to MongoDB; reload after a Redis loss; serialized moves."""

import json
import random
import threading

import pytest
from helpers import auth


@pytest.fixture
def rate(app):
    """Small move-rate settings: 3 accepted moves per 10 s, then a 4 s ban."""
    app.config.update(MOVE_RATE_LIMIT=3, MOVE_RATE_WINDOW_SECONDS=10, MOVE_BAN_SECONDS=4)
    app.extensions.pop("oc_board", None)
    yield
    app.extensions.pop("oc_board", None)


def test_over_the_move_rate_a_token_is_429_with_retry_after(rate, make_puzzle, player):
    p = player("token_1", make_puzzle(rows=3, cols=3))
    for n in (1, 2, 3):
        assert p.take_and_move(n, 10 * n, 10).status_code == 204
    answer = p.token(4)
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 4
    assert answer.get_json()["error"] == "move_rate_exceeded"


def test_the_ban_is_per_player_and_per_puzzle(rate, make_puzzle, player):
    first, second = make_puzzle(rows=3, cols=3), make_puzzle(rows=3, cols=3)
    for n in (1, 2, 3):
        player("token_1", first).take_and_move(n, 10 * n, 10)
    assert player("token_2", first).token(4).status_code == 200
    assert player("token_1", second).token(4).status_code == 200


def test_refused_moves_do_not_count(rate, make_puzzle, player):
    p = player("token_1", make_puzzle(rows=3, cols=3))
    token = p.token(1).get_json()["token"]
    for _ in range(5):
        assert p.move(1, "wrong", 10, 10).status_code == 409
        assert p.move(1, token, "x", 10).status_code == 400
    assert p.move(1, token, 10, 10).status_code == 204
    assert p.take_and_move(2, 20, 10).status_code == 204
    assert p.token(3).status_code == 200


def test_the_lock_holder_asking_again_is_never_429(rate, make_puzzle, player):
    p = player("token_1", make_puzzle(rows=3, cols=3))
    held = p.token(5).get_json()["token"]
    for n in (1, 2, 3):
        p.take_and_move(n, 10 * n, 10)
    again = p.token(5)
    assert again.status_code == 200
    assert again.get_json()["token"] == held


def test_a_move_during_the_ban_is_429_and_keeps_the_token(rate, make_puzzle, player, redis):
    from object_challenge.publish import keys

    puzzle_id = make_puzzle(rows=3, cols=3)
    p = player("token_1", puzzle_id)
    held = p.token(5).get_json()["token"]
    for n in (1, 2, 3):
        p.take_and_move(n, 10 * n, 10)
    assert p.move(5, held, 40, 40).status_code == 429
    user_id = p.client.get("/newapi/whoami", headers=p.headers).get_json()["user_id"]
    assert redis.delete(keys.ban(puzzle_id, user_id)) == 1  # as if the ban ran out
    assert p.move(5, held, 40, 40).status_code == 204


def test_write_back_then_reload_after_redis_loss(app, make_puzzle, player, redis):
    from object_challenge.publish import flush, keys

    puzzle_id = make_puzzle(rows=3, cols=3)
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 111, 222)
    with app.app_context():
        assert flush.flush_puzzle(puzzle_id) == 1
    written = p.pieces()
    lost_seq = int(p.take_and_move(2, 333, 444).headers["X-Puzzle-Seq"])  # after the last write-back: lost
    assert lost_seq == 2
    redis.flushdb()
    watcher = redis.pubsub()
    watcher.subscribe(keys.channel(puzzle_id))
    assert watcher.get_message(timeout=2)["type"] == "subscribe"
    state = p.puzzle()
    # the sequence never goes back: the reload continues above any number handed out
    assert state["seq"] == 1 + flush.SEQ_GAP
    assert {n: (q["x"], q["y"]) for n, q in p.pieces().items()} == {n: (q["x"], q["y"]) for n, q in written.items()}
    event = watcher.get_message(timeout=2)
    assert event["type"] == "message"
    assert json.loads(event["data"]) == {"reload": True, "puzzle_id": puzzle_id, "seq": 1 + flush.SEQ_GAP}
    watcher.close()
    next_seq = int(p.take_and_move(2, 333, 444).headers["X-Puzzle-Seq"])
    assert next_seq > lost_seq
    updates = p.updates(since=lost_seq)
    assert [u["seq"] for u in updates] == [next_seq]  # a client resuming at 2 misses nothing


def test_an_evicted_board_reloads_at_its_own_seq(app, make_puzzle, player, redis):
    from object_challenge.publish import flush

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 50, 60)
    with app.app_context():
        flush.flush_puzzle(puzzle_id)
        assert flush.evict_idle(idle_seconds=0) == 1
    assert p.puzzle()["seq"] == 1  # MongoDB had every move: no jump


def test_a_move_after_redis_loss_reloads_the_board(app, make_puzzle, player, redis):
    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    redis.flushdb()
    assert p.take_and_move(1, 50, 60).status_code == 204


def test_flush_due_writes_back_idle_puzzles_only(app, make_puzzle, player, redis):
    from object_challenge.publish import flush, keys
    from object_challenge.publish.models import Puzzle

    puzzle_id = make_puzzle()
    player("token_1", puzzle_id).take_and_move(1, 50, 60)
    with app.app_context():
        assert flush.flush_due() == 0  # busy: moved just now, dirty for less than PUZZLE_FLUSH_SECONDS
        redis.hset(keys.meta(puzzle_id), "last_move", 0)  # as if idle for a long time
        assert flush.flush_due() == 1
        assert Puzzle.objects(puzzle_id=puzzle_id).first().seq == 1
        assert redis.zscore(keys.DIRTY, puzzle_id) is None


def test_flush_due_writes_back_puzzles_dirty_too_long(app, make_puzzle, player, redis):
    from object_challenge.publish import flush, keys

    puzzle_id = make_puzzle()
    player("token_1", puzzle_id).take_and_move(1, 50, 60)
    redis.zadd(keys.DIRTY, {puzzle_id: 0})  # dirty since the epoch
    with app.app_context():
        assert flush.flush_due() == 1


def test_an_older_snapshot_never_overwrites_a_newer_one(app, make_puzzle, player):
    from object_challenge.publish import flush
    from object_challenge.publish.models import Puzzle

    puzzle_id = make_puzzle()
    player("token_1", puzzle_id).take_and_move(1, 50, 60)
    with app.app_context():
        Puzzle.objects(puzzle_id=puzzle_id).update_one(set__seq=99)
        flush.flush_puzzle(puzzle_id)
        assert Puzzle.objects(puzzle_id=puzzle_id).first().seq == 99


def test_cli_flush_and_reload(app, runner, make_puzzle, player, redis):
    puzzle_id = make_puzzle()
    player("token_1", puzzle_id).take_and_move(1, 50, 60)
    assert "1 puzzles written back" in runner.invoke(args=["puzzle", "flush"]).output
    redis.flushdb()
    assert "1 puzzles reloaded" in runner.invoke(args=["puzzle", "reload"]).output
    assert f"{puzzle_id:>5}  2x3" in runner.invoke(args=["puzzle", "list"]).output


def test_concurrent_moves_equal_their_serial_replay(app, make_puzzle, player):
    """20 threads x 10 moves straight on the board: seqs 1..N, replay in seq order gives the same board."""
    from object_challenge.publish.board import Board, Refused
    from object_challenge.publish.models import Piece, Puzzle

    puzzle_id = make_puzzle(rows=6, cols=6, table_width=1200, table_height=1200)
    with app.app_context():
        from object_challenge.core.extensions import redis as proxy

        client = proxy.client
        cfg = dict(app.config, MOVE_RATE_LIMIT=10**6)
        initial = Puzzle.objects(puzzle_id=puzzle_id).first()
    accepted, lock = [], threading.Lock()

    def play(player_id):
        board, rng, done = Board(client, cfg), random.Random(player_id), 0
        while done < 10:
            n = rng.randrange(1, 36)
            try:
                grant = board.token(puzzle_id, n, player_id)
                x, y = rng.randrange(-50, 1250), rng.randrange(-50, 1250)
                seq = board.move(puzzle_id, n, player_id, grant.token, x, y, 0)["seq"]
            except Refused:
                continue
            with lock:
                accepted.append((seq, n, x, y))
            done += 1

    threads = [threading.Thread(target=play, args=(i,)) for i in range(100, 120)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted.sort()
    assert [a[0] for a in accepted] == list(range(1, 201))

    replay_id = puzzle_id + 10**6
    clone = Puzzle(
        puzzle_id=replay_id,
        rows=initial.rows,
        cols=initial.cols,
        table_width=initial.table_width,
        table_height=initial.table_height,
        piece_width=initial.piece_width,
        piece_height=initial.piece_height,
        status="active",
        seq=0,
        pieces=[
            Piece(**{k: getattr(q, k) for k in ("id", "x", "y", "r", "group", "immovable", "cx", "cy")})
            for q in initial.pieces
        ],
    )
    board = Board(client, cfg)
    board.load(clone)
    for seq, n, x, y in accepted:
        if board.state(replay_id)[1][n]["immovable"]:
            pytest.fail(f"move {seq} of piece {n} was accepted live but the piece is immovable in the replay")
        grant = board.token(replay_id, n, 1)
        assert board.move(replay_id, n, 1, grant.token, x, y, 0)["seq"] == seq
    assert board.state(replay_id)[1] == board.state(puzzle_id)[1]
    live_updates = [json.loads(u) for u in board.updates_since(puzzle_id, 0)[1]]
    assert [u["seq"] for u in live_updates] == list(range(1, 201))


def test_since_returns_at_least_the_last_1000(app, make_puzzle, client):
    from object_challenge.publish.board import Board

    puzzle_id = make_puzzle(rows=2, cols=2, table_width=400, table_height=400)
    with app.app_context():
        from object_challenge.core.extensions import redis as proxy

        board = Board(proxy.client, dict(app.config, MOVE_RATE_LIMIT=10**6))
        for i in range(1100):
            grant = board.token(puzzle_id, 3, 1)
            board.move(puzzle_id, 3, 1, grant.token, 250 + (i % 2) * 50, 250, 0)
    updates = client.get(f"/newapi/puzzle/{puzzle_id}/updates/?since=0", headers=auth("token_1")).get_json()["updates"]
    assert len(updates) >= 1000
    assert updates[-1]["seq"] == 1100
    assert [u["seq"] for u in updates] == list(range(1101 - len(updates), 1101))


def test_idle_written_back_boards_leave_redis_and_come_back(app, make_puzzle, player, redis):
    from object_challenge.publish import flush, keys

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 70, 80)
    with app.app_context():
        assert flush.evict_idle(idle_seconds=0) == 0  # dirty: MongoDB does not have the move yet
        flush.flush_puzzle(puzzle_id)
        assert flush.evict_idle(idle_seconds=3600) == 0  # moved just now
        assert flush.evict_idle(idle_seconds=0) == 1
    assert not redis.exists(keys.meta(puzzle_id)) and not redis.sismember(keys.LIVE, puzzle_id)
    assert (p.pieces()[1]["x"], p.pieces()[1]["y"]) == (70, 80)  # reloaded on demand
    assert redis.sismember(keys.LIVE, puzzle_id)
    assert p.take_and_move(1, 90, 80).headers["X-Puzzle-Seq"] == "2"


def test_cli_create_now_generates_the_pieces_in_place(app, runner, client):
    import json

    result = runner.invoke(args=["puzzle", "create", "2", "3", "--now"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["pieces"] == 6 and made["status"] == "active"
    board = client.get(f"/newapi/puzzle/{made['puzzle_id']}/", headers={"Authorization": "Token token_1"})
    assert board.status_code == 200 and len(board.get_json()["pieces"]) == 6


def test_cli_create_queues_the_artist_job(app, runner):
    import json

    result = runner.invoke(args=["puzzle", "create", "2", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "generating"
    assert runner.invoke(args=["puzzle", "create", "2", "2", "--table", "big"]).exit_code == 2
