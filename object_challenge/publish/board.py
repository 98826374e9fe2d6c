"""The live board of each puzzle, in Redis: one Lua script per step.

``token.lua`` grants a piece's lock and move token; ``move.lua`` applies one
move (token, joins, immovability, completion, sequence, the retained update
and the PUBLISH) in one atomic step, so the moves of a puzzle are serialized by
Redis itself: no ticket counter, no polling, no WATCH retries, and no move is
ever lost or applied twice. ``load.lua`` puts a board from MongoDB into Redis.
A refused request writes nothing.
"""

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from object_challenge.core.extensions import redis
from object_challenge.publish import keys

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent / "scripts"
JOIN_TOLERANCE = 50  # px on each axis, as the contract says
UPDATES_RETAINED = 1000  # the catch-up read returns at least this many
META_INT = (
    "rows",
    "cols",
    "table_width",
    "table_height",
    "piece_width",
    "piece_height",
    "ox",
    "oy",
    "count",
    "immovable",
    "seq",
    "last_move",
)


class Refused(Exception):
    """A script said no; ``why`` names the reason, ``retry_ms`` how long a ban or lock lasts."""

    def __init__(self, why, retry_ms=None):
        super().__init__(why)
        self.why = why
        self.retry_ms = retry_ms


@dataclass
class Grant:
    token: str
    lock_ms: int
    token_ms: int
    now_ms: int
    same: bool


def parse_piece(raw):
    """A piece as the board keeps it in Redis ("x,y,r,group,immovable": "12,40,0,3,1", as
    scripts/lib.lua formats it) -> its public fields."""
    x, y, r, g, i = raw.split(",")
    return {"x": int(x), "y": int(y), "r": int(r), "group": int(g), "immovable": i == "1"}


def _answer(raw):
    data = json.loads(raw)
    if "refused" in data:
        raise Refused(data["refused"], data.get("retry_ms"))
    return data


class Board:
    """The scripts, registered once per Redis client (EVALSHA; reloaded on NOSCRIPT)."""

    def __init__(self, client, config):
        self.redis = client
        self.lock_ms = int(config["PIECE_LOCK_SECONDS"] * 1000)
        self.token_ms = int(config["MOVE_TOKEN_SECONDS"] * 1000)
        self.rate_limit = int(config["MOVE_RATE_LIMIT"])
        self.rate_window_ms = int(config["MOVE_RATE_WINDOW_SECONDS"] * 1000)
        self.ban_ms = int(config["MOVE_BAN_SECONDS"] * 1000)
        lib = (HERE / "lib.lua").read_text()
        self._token = client.register_script(lib + (HERE / "token.lua").read_text())
        self._move = client.register_script(lib + (HERE / "move.lua").read_text())
        self._load = client.register_script(lib + (HERE / "load.lua").read_text())
        self._since = client.register_script(lib + (HERE / "since.lua").read_text())
        self._evict = client.register_script(lib + (HERE / "evict.lua").read_text())

    def settings(self):
        """What the gateway needs to run token.lua / move.lua itself (keys.SCRIPTS)."""
        return {
            "token_sha": self._token.sha,
            "move_sha": self._move.sha,
            "lock_ms": self.lock_ms,
            "token_ms": self.token_ms,
            "rate_limit": self.rate_limit,
            "window_ms": self.rate_window_ms,
            "ban_ms": self.ban_ms,
            "tolerance": JOIN_TOLERANCE,
            "retained": UPDATES_RETAINED,
        }

    def publish_settings(self):
        """Load the scripts into Redis and tell the gateway their SHA1s and settings."""
        self.redis.script_load(self._token.script)
        self.redis.script_load(self._move.script)
        self.redis.hset(keys.SCRIPTS, mapping=self.settings())

    def settings_published(self):
        return self.redis.hgetall(keys.SCRIPTS) == {k: str(v) for k, v in self.settings().items()}

    # -- the hot path -------------------------------------------------------
    def token(self, puzzle_id, piece, player, mark=""):
        """Lock ``piece`` for ``player``; a :class:`Grant` or :class:`Refused`."""
        data = _answer(
            self._token(
                keys=keys.token_keys(puzzle_id, piece, player),
                args=[piece, player, secrets.token_urlsafe(18), mark, self.lock_ms, self.token_ms],
            )
        )
        return Grant(
            data["token"], int(data["lock_ms"]), int(data["token_ms"]), int(data["now_ms"]), bool(data["same"])
        )

    def move(self, puzzle_id, piece, player, token, x, y, r=None):
        """Apply one move; ``{"seq", "complete", "banned"}`` or :class:`Refused`."""
        return _answer(
            self._move(
                keys=keys.move_keys(puzzle_id, piece, player),
                args=[
                    puzzle_id,
                    piece,
                    token,
                    player,
                    repr(float(x)),
                    repr(float(y)),
                    "" if r is None else repr(float(r)),
                    self.rate_limit,
                    self.rate_window_ms,
                    self.ban_ms,
                    JOIN_TOLERANCE,
                    UPDATES_RETAINED,
                    keys.channel(puzzle_id),
                ],
            )
        )

    # -- reads ------------------------------------------------------------------
    def exists(self, puzzle_id):
        return bool(self.redis.exists(keys.meta(puzzle_id)))

    def state(self, puzzle_id):
        """``(meta, pieces)`` read in one MULTI, or ``(None, None)`` when Redis lacks it.

        ``pieces`` is a list of public piece dicts ordered by id.
        """
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(keys.meta(puzzle_id))
        pipe.hgetall(keys.pieces(puzzle_id))
        meta, raw = pipe.execute()
        if not meta:
            return None, None
        for name in META_INT:
            if name in meta:
                meta[name] = int(meta[name])
        pieces = []
        for pid, value in raw.items():
            pieces.append({"id": int(pid), **parse_piece(value)})
        pieces.sort(key=lambda p: p["id"])
        return meta, pieces

    def updates_since(self, puzzle_id, since):
        """``(seq, [update JSON strings with seq > since])`` from the retained list."""
        seq, retained = self._since(keys=[keys.meta(puzzle_id), keys.updates(puzzle_id)], args=[since])
        return int(seq), retained

    # -- loading ------------------------------------------------------------------
    def load(self, puzzle, seq=None):
        """Put ``puzzle`` (a models.Puzzle with pieces) into Redis unless it is there;
        its sequence continues from ``seq`` (default: the one MongoDB has)."""
        meta = {
            "rows": puzzle.rows,
            "cols": puzzle.cols,
            "table_width": puzzle.table_width,
            "table_height": puzzle.table_height,
            "piece_width": puzzle.piece_width,
            "piece_height": puzzle.piece_height,
            "ox": puzzle.pieces[0].cx,
            "oy": puzzle.pieces[0].cy,
            "count": len(puzzle.pieces),
            "status": puzzle.status,
            "seq": puzzle.seq if seq is None else seq,
            "immovable": sum(1 for p in puzzle.pieces if p.immovable),
        }
        pieces = [[p.id, p.x, p.y, p.r, p.group, int(p.immovable)] for p in puzzle.pieces]
        return bool(
            self._load(
                keys=[
                    keys.meta(puzzle.puzzle_id),
                    keys.pieces(puzzle.puzzle_id),
                    keys.groups(puzzle.puzzle_id),
                    keys.updates(puzzle.puzzle_id),
                    keys.LIVE,
                ],
                args=[json.dumps(meta), json.dumps(pieces), puzzle.puzzle_id],
            )
        )

    def evict(self, puzzle_id, idle_ms):
        """Drop a written-back board idle for ``idle_ms`` from Redis; True if it was dropped."""
        return bool(
            self._evict(
                keys=[
                    keys.meta(puzzle_id),
                    keys.pieces(puzzle_id),
                    keys.groups(puzzle_id),
                    keys.updates(puzzle_id),
                    keys.DIRTY,
                    keys.LIVE,
                    keys.EVICTED,
                ],
                args=[puzzle_id, idle_ms],
            )
        )


def current():
    """The app's Board (scripts registered once per app)."""
    app = current_app._get_current_object()
    found = app.extensions.get("oc_board")
    if found is None:
        found = app.extensions["oc_board"] = Board(redis.client, app.config)
        try:
            found.publish_settings()
        except Exception as exc:  # Redis not up yet: the scheduler publishes them
            log.warning("could not publish the board scripts for the gateway: %s", exc)
    return found
