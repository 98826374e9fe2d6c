"""ops/recovery.py: the scheduler's recovery when Redis lost its data or restarted."""

import json


def test_recovery_after_redis_lost_everything(app, make_puzzle, player, redis):
    from object_challenge.ops import recovery
    from object_challenge.publish import flush

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 50, 60)
    with app.app_context():
        flush.flush_puzzle(puzzle_id)
        assert recovery.recover_if_redis_lost()  # first pass: no marker yet
        assert recovery.recover_if_redis_lost() is None  # marker set: nothing to do
        redis.flushdb()
        done = recovery.recover_if_redis_lost()
    assert done["puzzles reloaded"] == 1 and done["snapshot"]
    assert p.puzzle()["seq"] == 1 + flush.SEQ_GAP  # reloaded by the scheduler, not by a request
    with app.app_context():
        from object_challenge.publish.models import Puzzle

        assert Puzzle.objects(puzzle_id=puzzle_id).first().seq == 1 + flush.SEQ_GAP  # a second loss goes higher


def test_recovery_after_a_redis_restart_skips_each_live_board_ahead(app, make_puzzle, player, redis):
    from object_challenge.ops import recovery
    from object_challenge.publish import flush, keys

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    seq = int(p.take_and_move(1, 50, 60).headers["X-Puzzle-Seq"])
    redis.set(recovery.MARKER, "run-id-of-the-redis-before-the-restart")
    watcher = redis.pubsub()
    watcher.subscribe(keys.channel(puzzle_id))
    assert watcher.get_message(timeout=2)["type"] == "subscribe"
    with app.app_context():
        done = recovery.recover_if_redis_lost()
    assert done["puzzles skipped ahead"] == 1
    assert p.puzzle()["seq"] == seq + flush.SEQ_GAP
    assert json.loads(watcher.get_message(timeout=2)["data"])["reload"] is True
    watcher.close()


def test_the_seq_never_goes_back_when_redis_loses_a_board_twice_between_write_backs(app, make_puzzle, player, redis):
    from object_challenge.publish import flush

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 50, 60)
    with app.app_context():
        flush.flush_puzzle(puzzle_id)  # MongoDB: seq 1
    redis.flushdb()
    handed_out = int(p.take_and_move(1, 70, 80).headers["X-Puzzle-Seq"])  # reloaded at 1 + SEQ_GAP
    assert handed_out == 2 + flush.SEQ_GAP
    redis.flushdb()  # lost again before the next write-back
    assert p.puzzle()["seq"] > handed_out
    assert int(p.take_and_move(1, 90, 100).headers["X-Puzzle-Seq"]) > handed_out


def test_the_seq_never_goes_back_when_redis_is_lost_after_a_restart_from_its_aof(app, make_puzzle, player, redis):
    from object_challenge.publish import flush

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    p.take_and_move(1, 50, 60)
    with app.app_context():
        flush.flush_puzzle(puzzle_id)  # MongoDB: seq 1
        assert flush.skip_ahead(puzzle_id)  # Redis restarted from its append-only file
    handed_out = int(p.take_and_move(1, 70, 80).headers["X-Puzzle-Seq"])
    assert handed_out == 2 + flush.SEQ_GAP
    redis.flushdb()  # then lost everything before the next write-back
    assert p.puzzle()["seq"] > handed_out


def test_recovery_puts_the_boards_and_the_snapshot_right_before_the_jobs(app, make_puzzle, player, redis, monkeypatch):
    """The jobs step reads every queued job from MongoDB (seconds with many): until the boards
    skip ahead, moves reuse the numbers the append-only file lost; until the snapshot is back,
    the gateway has no tokens."""
    from object_challenge.core import keys as core_keys
    from object_challenge.jobs import service as jobs_service
    from object_challenge.ops import recovery
    from object_challenge.publish import flush, keys

    puzzle_id = make_puzzle()
    p = player("token_1", puzzle_id)
    seq = int(p.take_and_move(1, 50, 60).headers["X-Puzzle-Seq"])
    with app.app_context():
        flush.flush_puzzle(puzzle_id)
        seen = []
        service = jobs_service.jobs()
        real = service.recover

        def recover():
            board = redis.hget(keys.meta(puzzle_id), "seq")
            seen.append((int(board) if board else None, bool(redis.exists(core_keys.GW_VERSION))))
            return real()

        monkeypatch.setattr(service, "recover", recover)
        redis.set(recovery.MARKER, "run-id-of-the-redis-before-the-restart")  # restarted from its AOF
        recovery.recover_if_redis_lost()
        redis.flushdb()  # then lost everything
        recovery.recover_if_redis_lost()
    assert seen == [(seq + flush.SEQ_GAP, True), (seq + 2 * flush.SEQ_GAP, True)]


def test_a_reader_between_mongodb_active_and_the_redis_load_does_not_skip_the_seq(app, client, player, monkeypatch):
    """create_pieces marks the puzzle active in MongoDB, then loads the board into Redis. A GET
    in between (helpers.create_puzzle polls every 0.1 s) found no board and an active puzzle,
    and reloaded it as if Redis had lost it: the fresh puzzle's first move was seq 1,000,001
    (tests/publish/test_publish_gateway.py's 200 concurrent moves failed so in a full run)."""
    from helpers import auth

    from object_challenge.publish import artist, board

    answer = client.post(
        "/newapi/puzzle/",
        headers=auth("token_admin"),
        json={"rows": 2, "cols": 3, "table_width": 1000, "table_height": 800},
    )
    puzzle_id = answer.get_json()["puzzle_id"]
    with app.app_context():
        real = board.current()

    class ReadFirst:
        """The board, but a reader comes first when the worker loads it."""

        read = False

        def load(self, puzzle, **kw):
            if not ReadFirst.read:
                ReadFirst.read = True
                seen = client.get(f"/newapi/puzzle/{puzzle_id}/", headers=auth("token_1"))
                assert seen.status_code == 200, seen.get_json()
            return real.load(puzzle, **kw)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(artist.board, "current", lambda: ReadFirst())
    with app.app_context():
        artist.create_pieces(puzzle_id, seed=1)
    monkeypatch.undo()
    p = player("token_1", puzzle_id)
    assert p.puzzle()["seq"] == 0
    moved = p.take_and_move(1, 900, 700)
    assert moved.status_code == 204 and moved.headers["X-Puzzle-Seq"] == "1"
