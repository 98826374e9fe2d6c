"""The publish operations the views call: the board in Redis, MongoDB behind it.

Each operation runs its script; when Redis has lost a puzzle (``missing``) the
board is reloaded from MongoDB (flush.reload) and the script runs once more.
Script refusals become the named errors below, which errors.py renders.
"""

import logging

from flask import current_app

from object_challenge.core.counters import next_id
from object_challenge.core.errors import BadRequest, Conflict, NotFound, TooManyRequests
from object_challenge.jobs.service import jobs  # the job queue's own API (enqueue + record)
from object_challenge.publish import board, flush
from object_challenge.publish.board import Refused
from object_challenge.publish.models import Puzzle

log = logging.getLogger(__name__)


class PuzzleNotFound(NotFound):
    code = "puzzle_not_found"

    def __init__(self, puzzle_id):
        super().__init__(f"no puzzle {puzzle_id}; see POST /newapi/puzzle/ to create one")


class PieceNotFound(NotFound):
    code = "piece_not_found"

    def __init__(self, puzzle_id, piece):
        super().__init__(f"puzzle {puzzle_id} has no piece {piece}; pieces are numbered from 0 row by row")


class PuzzleGenerating(Conflict):
    code = "puzzle_generating"

    def __init__(self, puzzle_id):
        super().__init__(
            f"puzzle {puzzle_id} is still being generated; retry in a moment", headers={"Retry-After": "1"}
        )


class PieceImmovable(BadRequest):
    code = "piece_immovable"


class PuzzleComplete(BadRequest):
    code = "puzzle_complete"


class PieceLocked(Conflict):
    code = "piece_locked"


class MoveConflict(Conflict):
    """A move that cannot be applied as asked (token or piece state); nothing was consumed."""

    code = "move_refused"


class MovesBanned(TooManyRequests):
    code = "move_rate_exceeded"


def publish_settings_if_missing():
    """Scheduler task: the gateway runs the move scripts only with their SHA1s and settings."""
    found = board.current()
    if not found.settings_published():
        found.publish_settings()
        log.info("board scripts and settings published for the gateway")


def _with_board(puzzle_id, step):
    """Run ``step()``; if Redis lacks the puzzle, reload it from MongoDB and run it again."""
    try:
        return step()
    except Refused as refused:
        if refused.why != "missing":
            raise
    puzzle = Puzzle.objects(puzzle_id=puzzle_id).first()
    if puzzle is None:
        raise PuzzleNotFound(puzzle_id)
    if puzzle.status == "generating":
        raise PuzzleGenerating(puzzle_id)
    flush.reload(puzzle)
    return step()


def _ban_message(retry_ms):
    seconds = current_app.config["MOVE_RATE_LIMIT"], current_app.config["MOVE_RATE_WINDOW_SECONDS"]
    return (
        f"{seconds[0]} moves in {seconds[1]:g} s on this puzzle reached the limit; "
        f"wait {max(1, round((retry_ms or 1000) / 1000))} s (Retry-After)"
    )


def grant_token(puzzle_id, piece, player, mark):
    try:
        grant = _with_board(puzzle_id, lambda: board.current().token(puzzle_id, piece, player, mark))
    except Refused as refused:
        why = refused.why
        if why == "no_piece":
            raise PieceNotFound(puzzle_id, piece) from None
        if why == "complete":
            raise PuzzleComplete(f"puzzle {puzzle_id} is complete; no piece moves any more") from None
        if why == "immovable":
            raise PieceImmovable(f"piece {piece} is already in place and cannot move") from None
        if why == "locked":
            raise PieceLocked(
                f"another player is moving piece {piece}; try again in a few seconds",
                headers={"Retry-After": str(max(1, round((refused.retry_ms or 1000) / 1000)))},
            ) from None
        if why == "banned":
            raise MovesBanned(_ban_message(refused.retry_ms), retry_after=(refused.retry_ms or 1000) / 1000) from None
        raise
    return {
        "token": grant.token,
        "lock": round((grant.now_ms + grant.lock_ms) / 1000, 3),
        "expires": round((grant.now_ms + grant.token_ms) / 1000, 3),
    }


def apply_move(puzzle_id, piece, player, token, x, y, r):
    try:
        result = _with_board(puzzle_id, lambda: board.current().move(puzzle_id, piece, player, token, x, y, r))
    except Refused as refused:
        why = refused.why
        if why == "no_piece":
            raise PieceNotFound(puzzle_id, piece) from None
        if why == "token":
            raise MoveConflict(
                "the move token is not valid for this piece and player: it was used, "
                "expired, or replaced; ask for a new one with GET .../token/",
                code="token_invalid",
            ) from None
        if why in ("complete", "immovable"):
            raise MoveConflict(f"piece {piece} is in place now and cannot move", code="piece_immovable") from None
        if why == "banned":
            raise MovesBanned(_ban_message(refused.retry_ms), retry_after=(refused.retry_ms or 1000) / 1000) from None
        raise
    if result["complete"]:
        try:
            flush.flush_puzzle(puzzle_id)
        except Exception:  # the scheduler writes it back on its next pass
            log.exception("write-back of completed puzzle %s failed", puzzle_id)
    return result


def puzzle_view(puzzle_id):
    """The public state: live from Redis, else MongoDB (reloading an active board)."""
    meta, pieces = board.current().state(puzzle_id)
    if meta is None:
        puzzle = Puzzle.objects(puzzle_id=puzzle_id).first()
        if puzzle is None:
            raise PuzzleNotFound(puzzle_id)
        if puzzle.status != "generating":
            flush.reload(puzzle)
            meta, pieces = board.current().state(puzzle_id)
        if meta is None:
            return _doc_view(puzzle)
    return {
        "puzzle_id": puzzle_id,
        "status": meta["status"],
        "rows": meta["rows"],
        "cols": meta["cols"],
        "table_width": meta["table_width"],
        "table_height": meta["table_height"],
        "piece_width": meta["piece_width"],
        "piece_height": meta["piece_height"],
        "seq": meta["seq"],
        "pieces": pieces,
    }


def _doc_view(puzzle):
    return {
        "puzzle_id": puzzle.puzzle_id,
        "status": puzzle.status,
        "rows": puzzle.rows,
        "cols": puzzle.cols,
        "table_width": puzzle.table_width,
        "table_height": puzzle.table_height,
        "piece_width": puzzle.piece_width,
        "piece_height": puzzle.piece_height,
        "seq": puzzle.seq,
        "pieces": [p.to_public() for p in puzzle.pieces],
    }


def solution(puzzle_id):
    puzzle = Puzzle.objects(puzzle_id=puzzle_id).first()
    if puzzle is None:
        raise PuzzleNotFound(puzzle_id)
    if puzzle.status == "generating":
        raise PuzzleGenerating(puzzle_id)
    return {"puzzle_id": puzzle_id, "pieces": [{"id": p.id, "x": p.cx, "y": p.cy, "r": 0} for p in puzzle.pieces]}


def playable_puzzles(after, limit):
    """``([puzzle summary], more)``: the active puzzles with an id above ``after``, by id."""
    found = list(
        Puzzle.objects(status="active", puzzle_id__gt=after)
        .only("puzzle_id", "rows", "cols", "table_width", "table_height", "created")
        .order_by("puzzle_id")
        .limit(limit + 1)
    )
    summaries = [
        {
            "puzzle_id": p.puzzle_id,
            "rows": p.rows,
            "cols": p.cols,
            "pieces": p.rows * p.cols,
            "table_width": p.table_width,
            "table_height": p.table_height,
            "url": f"/newapi/puzzle/{p.puzzle_id}/",
        }
        for p in found[:limit]
    ]
    return summaries, len(found) > limit


def updates_since(puzzle_id, since):
    """``(seq, [update JSON strings])``; 404 for an unknown puzzle, 409 for one still generating
    (the gateway's stream of a board Redis does not hold loads it through here: docs/gateway.md)."""
    if not board.current().exists(puzzle_id) and puzzle_view(puzzle_id)["status"] == "generating":  # 404 or reload
        raise PuzzleGenerating(puzzle_id)
    return board.current().updates_since(puzzle_id, since)


# -- creating a puzzle ---------------------------------------------------------
MAX_SIDE = 100  # rows and cols each
MAX_PIECES = 10000
MAX_PIECE_SIZE = 100  # px; pieces are square
MIN_PIECE_SIZE = 10
MAX_TABLE = 100000  # px


def _whole(body, name, low, high):
    value = body.get(name)
    if type(value) is not int or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}", code="bad_size")
    return value


def parse_sizes(body):
    """``(rows, cols, table_width, table_height, piece_size)`` or BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest(
            'send a JSON object {"rows": R, "cols": C, "table_width": W, "table_height": H}', code="bad_size"
        )
    rows = _whole(body, "rows", 1, MAX_SIDE)
    cols = _whole(body, "cols", 1, MAX_SIDE)
    width = _whole(body, "table_width", MIN_PIECE_SIZE, MAX_TABLE)
    height = _whole(body, "table_height", MIN_PIECE_SIZE, MAX_TABLE)
    if not 2 <= rows * cols <= MAX_PIECES:
        raise BadRequest(f"a puzzle has from 2 to {MAX_PIECES} pieces (rows x cols)", code="bad_size")
    size = min(MAX_PIECE_SIZE, width // cols, height // rows)
    if size < MIN_PIECE_SIZE:
        raise BadRequest(
            f"the table is too small: each piece needs at least {MIN_PIECE_SIZE} px "
            f"({cols * MIN_PIECE_SIZE} x {rows * MIN_PIECE_SIZE} for this puzzle)",
            code="bad_size",
        )
    return rows, cols, width, height, size


def record_puzzle(body, identity):
    """Record a new puzzle, ``generating`` (its pieces come from the artist); returns it."""
    rows, cols, width, height, size = parse_sizes(body)
    puzzle = Puzzle(
        puzzle_id=next_id("puzzle_id"),
        rows=rows,
        cols=cols,
        table_width=width,
        table_height=height,
        piece_width=size,
        piece_height=size,
        status="generating",
        owner=identity.user_id,
    )
    puzzle.save(force_insert=True)
    return puzzle


def create_puzzle(body, identity):
    """Record the puzzle (``generating``) and queue its ``puzzle_create`` job."""
    puzzle = record_puzzle(body, identity)
    job = jobs().enqueue(
        {
            "job_title": f"puzzle_create {puzzle.puzzle_id}",
            "tasks": [{"module": "puzzle_create", "data": {"puzzle_id": puzzle.puzzle_id}}],
        },
        current_app.config["REDIS_QUEUE_NAME"],
        identity,
    )
    Puzzle.objects(puzzle_id=puzzle.puzzle_id).update_one(set__job_id=job["job_id"])
    return {"puzzle_id": puzzle.puzzle_id, "job_id": job["job_id"], "status": "generating"}
