"""The publish service: realtime piece moves on shared puzzles (seed 000, Puzzle Massive).

keys.py   every Redis key and channel of a puzzle, built here and only here
board.py  the live board in Redis: one Lua script per step (token, move, load, ...)
views.py  HTTP under /newapi/puzzle (validation order 401 -> 403 -> 400 -> 409)
artist.py the ``puzzle_create`` job task: generates the pieces (registered on import)
flush.py  Redis -> MongoDB write-back, and MongoDB -> Redis reload
The SSE stream is served by the gateway itself: lua/oc/stream.lua.
"""

from object_challenge.publish import artist, cli, flush, metrics, service, views
from object_challenge.publish.models import Puzzle

bp = views.bp

MODELS = (Puzzle,)


def register(app):
    app.extensions["oc.models"].extend(MODELS)
    app.extensions["oc.schedule"].extend(
        [
            (flush.flush_due, 1.0),  # live boards -> MongoDB
            (service.publish_settings_if_missing, 1.0),  # move scripts for the gateway
            (flush.evict_idle, 60.0),  # idle written-back boards leave Redis
        ]
    )
    if "publish" in app.config["SERVICE_NAMES"]:
        app.extensions["oc.metrics"].append(metrics.PuzzleCollector())
    for command in cli.COMMANDS:
        app.cli.add_command(command)


__all__ = ["artist", "bp", "register"]
