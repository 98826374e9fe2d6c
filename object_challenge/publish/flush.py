"""Redis -> MongoDB write-back of live boards, and MongoDB -> Redis reload.

A move marks its puzzle dirty (``oc:pub:dirty``, score = ms of the first move
not yet written back). The scheduler runs :func:`flush_due` every second and
writes back a dirty puzzle when

- it is complete (the move view also writes it back at once),
- it went idle (no move for IDLE_SECONDS), or
- it has been dirty for PUZZLE_FLUSH_SECONDS (a busy puzzle).

So a Redis crash loses at most the moves of the last PUZZLE_FLUSH_SECONDS plus
one scheduler pass (default 10 s + 1 s; docs/publish.md). The snapshot is read
in one MULTI together with clearing the dirty mark, so a move that lands after
it marks the puzzle again; the MongoDB write is conditional on the sequence
number, so an older snapshot never overwrites a newer one (two schedulers are
harmless).
"""

import json
import logging
from datetime import UTC, datetime

from flask import current_app

from object_challenge.core.extensions import redis, redis_now_ms
from object_challenge.publish import board, keys
from object_challenge.publish.models import Puzzle

log = logging.getLogger(__name__)

IDLE_SECONDS = 2.0
BATCH = 100  # puzzles looked at per pass
EVICT_IDLE_SECONDS = 3600  # a written-back board idle this long leaves Redis (reloaded on demand)
# A board Redis lost is reloaded from MongoDB, which has the seq of its last write-back;
# moves after that one were acknowledged with higher numbers that are now lost. The
# reload continues SEQ_GAP above, more than one board takes moves between two
# write-backs (PUZZLE_FLUSH_SECONDS + 1 s), so a number is never handed out twice
# and ``?since=`` never misses a move (docs/publish.md).
SEQ_GAP = 1_000_000


def flush_puzzle(puzzle_id):
    """Write the live board of ``puzzle_id`` to MongoDB; returns the seq written (None: not in Redis)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(keys.meta(puzzle_id))
    pipe.hgetall(keys.pieces(puzzle_id))
    pipe.zscore(keys.DIRTY, puzzle_id)
    pipe.zrem(keys.DIRTY, puzzle_id)
    meta, raw, dirty_since, _ = pipe.execute()
    if not meta:
        return None
    try:
        cols, pw, ph = int(meta["cols"]), int(meta["piece_width"]), int(meta["piece_height"])
        ox, oy, seq = int(meta["ox"]), int(meta["oy"]), int(meta["seq"])
        pieces = []
        for pid in sorted(raw, key=int):
            n = int(pid)
            pieces.append(
                {"id": n, **board.parse_piece(raw[pid]), "cx": ox + (n % cols) * pw, "cy": oy + (n // cols) * ph}
            )
        Puzzle._get_collection().update_one(
            {"puzzle_id": int(puzzle_id), "seq": {"$lte": seq}},
            {"$set": {"pieces": pieces, "seq": seq, "status": meta["status"], "flushed": datetime.now(UTC)}},
        )
    except Exception:
        if dirty_since is not None:  # try again on the next pass
            redis.zadd(keys.DIRTY, {puzzle_id: dirty_since}, nx=True)
        raise
    return seq


def flush_due():
    """Scheduler task: write back the puzzles that are complete, idle, or dirty for too long."""
    now = redis_now_ms()
    busy_ms = current_app.config["PUZZLE_FLUSH_SECONDS"] * 1000
    flushed = 0
    for puzzle_id, dirty_since in redis.zrange(keys.DIRTY, 0, BATCH - 1, withscores=True):
        status, last_move = redis.hmget(keys.meta(puzzle_id), "status", "last_move")
        idle = last_move is None or now - int(last_move) >= IDLE_SECONDS * 1000
        if status == "complete" or idle or now - dirty_since >= busy_ms:
            try:
                flush_puzzle(puzzle_id)
                flushed += 1
            except Exception:
                log.exception("write-back of puzzle %s failed; retrying next pass", puzzle_id)
    return flushed


def flush_all():
    """Write back every dirty puzzle now (operators, shutdown)."""
    count = 0
    while True:
        ids = redis.zrange(keys.DIRTY, 0, BATCH - 1)
        if not ids:
            return count
        for puzzle_id in ids:
            flush_puzzle(puzzle_id)
            count += 1


def evict_idle(idle_seconds=EVICT_IDLE_SECONDS):
    """Scheduler task: drop boards that are written back and idle for an hour; returns how many.

    Their retained updates go with them (a catch-up read after that starts from the
    reloaded ``seq``); tokens, locks and bans expire on their own.
    """
    found = board.current()
    return sum(found.evict(puzzle_id, int(idle_seconds * 1000)) for puzzle_id in redis.smembers(keys.LIVE))


def announce_reload(puzzle_id, seq):
    """Tell the puzzle's watchers (the SSE stream relays the channel) to read the board again."""
    message = json.dumps({"reload": True, "puzzle_id": int(puzzle_id), "seq": int(seq)})
    redis.publish(keys.channel(puzzle_id), message)


def reload(puzzle, kept=None):
    """Put a puzzle from MongoDB back into Redis; False if it was there.

    After an eviction (MongoDB has every move) the sequence continues where it was;
    after a loss it continues SEQ_GAP higher, the watchers get a ``reload`` event and
    MongoDB's seq is raised to it (``keep_seq``; or, given a dict ``kept``, put there for
    the caller to keep once every board is back).
    """
    clean = bool(redis.srem(keys.EVICTED, puzzle.puzzle_id))
    seq = puzzle.seq if clean else puzzle.seq + SEQ_GAP
    loaded = board.current().load(puzzle, seq=seq)
    if loaded and not clean:
        log.warning("puzzle %s reloaded into Redis from MongoDB (seq %s) at seq %s", puzzle.puzzle_id, puzzle.seq, seq)
        announce_reload(puzzle.puzzle_id, seq)
        if kept is None:
            keep_seq(puzzle.puzzle_id, seq)
        else:
            kept[puzzle.puzzle_id] = seq
    return loaded


def keep_seq(puzzle_id, seq):
    """MongoDB's seq becomes at least ``seq`` (its pieces stay as written back): a board
    Redis loses again before its next write-back reloads SEQ_GAP above this, not above the
    old write-back, so no number is handed out twice."""
    Puzzle.objects(puzzle_id=int(puzzle_id), seq__lt=int(seq)).update_one(set__seq=int(seq))


_BUMP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HINCRBY', KEYS[1], 'seq', ARGV[1])
"""


def skip_ahead(puzzle_id, keep=True):
    """After Redis restarted from its append-only file (which may lack the last second
    of moves): continue the board's sequence SEQ_GAP higher and tell its watchers; then
    (``keep``) raise MongoDB's seq to it. Returns the new seq, or False (no board)."""
    seq = redis.eval(_BUMP, 1, keys.meta(puzzle_id), SEQ_GAP)
    if seq is None:
        return False
    announce_reload(puzzle_id, seq)
    if keep:
        keep_seq(puzzle_id, seq)
    return seq


def reload_missing():
    """Reload every active puzzle that Redis has lost; returns how many were reloaded.
    MongoDB's seq of each is raised once every board is back (on the stand-in a whole
    document write: seconds for 10,000 pieces under load)."""
    count, kept = 0, {}
    for puzzle in Puzzle.objects(status__in=["active", "complete"]).only("puzzle_id"):
        if not redis.exists(keys.meta(puzzle.puzzle_id)):
            full = Puzzle.objects(puzzle_id=puzzle.puzzle_id).first()
            count += bool(full and reload(full, kept))
    for puzzle_id, seq in kept.items():
        keep_seq(puzzle_id, seq)
    return count
