"""The ``puzzle_create`` job task (Puzzle Massive's "artist"): generate a puzzle's pieces.

No image is rendered: a piece is a square cell of the solved puzzle, which sits
centred on the table. Each piece gets its correct position and a scattered start
position inside the table; piece 0 (top-left) starts in place and immovable.
Delivery is at-least-once, so the task is idempotent: only a puzzle still
``generating`` is written.
"""

import logging
import random

from flask import has_app_context

from object_challenge.core.extensions import redis
from object_challenge.jobs.tasks import TaskFailed, register_task
from object_challenge.publish import board, keys
from object_challenge.publish.models import Piece, Puzzle

log = logging.getLogger(__name__)


class PuzzleMissing(Exception):
    """The job names a puzzle that does not exist (deleted meanwhile)."""


def layout(rows, cols, table_width, table_height, size, rng=None):
    """The pieces of a new puzzle, row-major from 0."""
    rng = rng or random.Random()
    ox, oy = (table_width - cols * size) // 2, (table_height - rows * size) // 2
    pieces = []
    for n in range(rows * cols):
        cx, cy = ox + (n % cols) * size, oy + (n // cols) * size
        if n == 0:
            x, y, immovable = cx, cy, True
        else:
            x, y, immovable = rng.randint(0, table_width - size), rng.randint(0, table_height - size), False
        pieces.append(Piece(id=n, x=x, y=y, r=0, group=n, immovable=immovable, cx=cx, cy=cy))
    return pieces


def create_pieces(puzzle_id, seed=None):
    """Generate and store the pieces, mark the puzzle active and load it into Redis."""
    puzzle = Puzzle.objects(puzzle_id=puzzle_id).first()
    if puzzle is None:
        raise PuzzleMissing(f"no puzzle {puzzle_id}")
    if puzzle.status == "generating":
        pieces = layout(
            puzzle.rows, puzzle.cols, puzzle.table_width, puzzle.table_height, puzzle.piece_width, random.Random(seed)
        )
        # a reader that finds the puzzle active before its board is in Redis loads it from
        # MongoDB itself: as a clean load (seq 0, as an evicted board), not as a board Redis
        # lost (which continues SEQ_GAP higher and tells watchers to re-read)
        redis.sadd(keys.EVICTED, puzzle_id)
        Puzzle.objects(puzzle_id=puzzle_id, status="generating").update_one(
            set__pieces=pieces, set__status="active", set__seq=0
        )
        puzzle.reload()
    if puzzle.status != "generating":
        board.current().load(puzzle)
        redis.srem(keys.EVICTED, puzzle_id)
    log.info("puzzle %s: %d pieces, status %s", puzzle_id, len(puzzle.pieces), puzzle.status)
    return {"puzzle_id": puzzle_id, "pieces": len(puzzle.pieces), "status": puzzle.status}


@register_task("puzzle_create")
def puzzle_create(data, job=None):
    """The job task: ``{"module": "puzzle_create", "data": {"puzzle_id": N}}``."""
    if not isinstance(data, dict) or type(data.get("puzzle_id")) is not int:
        raise ValueError('puzzle_create needs data {"puzzle_id": <int>}')
    if not has_app_context():
        raise TaskFailed("puzzle_create needs the stores: run it with `manage.py worker`, which runs tasks in the app")
    return create_pieces(data["puzzle_id"], data.get("seed"))
