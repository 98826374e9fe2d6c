"""Every Redis key of the publish service (the gateway's twin: lua/oc/keys.lua, ``pub_*``).

All of one puzzle's keys share the ``oc:pub:puzzle:<id>`` stem. ``token_keys`` and
``move_keys`` are the KEYS of token.lua and move.lua in their order, the one place
each side builds them (tests/cases/moves.json holds the order both sides are tested on).
"""

from object_challenge.core.keys import key

SERVICE = "pub"

# ZSET puzzle id -> ms of the first move not yet written back to MongoDB
DIRTY = key(SERVICE, "dirty")
# SET of the puzzle ids whose board Redis holds (load.lua adds, evict.lua removes)
LIVE = key(SERVICE, "live")
# SET of the puzzle ids evicted by evict.lua with MongoDB up to date: their reload
# continues at MongoDB's seq; any other reload (Redis lost the board) jumps above it
EVICTED = key(SERVICE, "evicted")
# HASH: the SHA1s of token.lua / move.lua and the settings they run with, so that
# the gateway (lua/oc/moves.lua) runs exactly what the service would
SCRIPTS = key(SERVICE, "scripts")
# HASH counters since this Redis began (metrics), one HINCRBY per token.lua / move.lua call:
# "token:granted", "token:<refusal>", "move:accepted", "move:<refusal>" (publish/metrics.py)
STATS = key(SERVICE, "stats")


def meta(puzzle_id):
    """HASH: rows, cols, table_width, table_height, piece_width, piece_height, ox, oy,
    count, immovable (count of), status, seq, last_move (ms)."""
    return key(SERVICE, "puzzle", puzzle_id)


def pieces(puzzle_id):
    """HASH piece id -> "x,y,r,group,immovable" (immovable 0/1)."""
    return key(SERVICE, "puzzle", puzzle_id, "pieces")


def groups(puzzle_id):
    """HASH group id -> "id,id,..." members; only groups of two or more pieces."""
    return key(SERVICE, "puzzle", puzzle_id, "groups")


def updates(puzzle_id):
    """LIST of the last UPDATES_RETAINED updates (JSON), oldest first."""
    return key(SERVICE, "puzzle", puzzle_id, "updates")


def channel(puzzle_id):
    """Pub/sub channel: one JSON message per applied move (what the SSE stream relays)."""
    return key(SERVICE, "puzzle", puzzle_id, "channel")


def lock(puzzle_id, piece):
    """STRING "<player>|<mark>" with PX = PIECE_LOCK_SECONDS: who may ask for the piece."""
    return key(SERVICE, "puzzle", puzzle_id, "lock", piece)


def token(puzzle_id, piece):
    """STRING "<token>|<player>" with PX = MOVE_TOKEN_SECONDS: the one valid move token."""
    return key(SERVICE, "puzzle", puzzle_id, "token", piece)


def rate(puzzle_id, player):
    """STRING counter of accepted moves in the current window (PX = the window)."""
    return key(SERVICE, "puzzle", puzzle_id, "rate", player)


def ban(puzzle_id, player):
    """STRING "1" with PX = MOVE_BAN_SECONDS: the player may not move on this puzzle."""
    return key(SERVICE, "puzzle", puzzle_id, "ban", player)


def token_keys(puzzle_id, piece, player):
    """KEYS of token.lua."""
    return [
        meta(puzzle_id),
        pieces(puzzle_id),
        lock(puzzle_id, piece),
        token(puzzle_id, piece),
        ban(puzzle_id, player),
        STATS,
    ]


def move_keys(puzzle_id, piece, player):
    """KEYS of move.lua."""
    return [
        meta(puzzle_id),
        pieces(puzzle_id),
        groups(puzzle_id),
        updates(puzzle_id),
        token(puzzle_id, piece),
        lock(puzzle_id, piece),
        rate(puzzle_id, player),
        ban(puzzle_id, player),
        DIRTY,
        STATS,
    ]
