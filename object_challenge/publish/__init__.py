"""The publish service: realtime piece moves on shared puzzles (seed 000, Puzzle Massive).

keys.py   every Redis key and channel of a puzzle, built here and only here
board.py  the live board in Redis: one Lua script per step (token, move, load, ...)
views.py  HTTP under /newapi/puzzle (validation order 401 -> 403 -> 400 -> 409)
artist.py the ``puzzle_create`` job task: generates the pieces
flush.py  Redis -> MongoDB write-back, and MongoDB -> Redis reload
The SSE stream is served by the gateway itself: lua/oc/stream.lua.
"""
