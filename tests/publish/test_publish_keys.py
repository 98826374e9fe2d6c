"""The Lua side (lua/oc/publish.lua, moves.lua) builds the same Redis keys as publish/keys.py."""

import re
from pathlib import Path

from object_challenge.publish import keys

LUA = Path(__file__).resolve().parents[2] / "lua" / "oc"


def lua_string(text, pattern):
    return re.search(pattern, text).group(1)


def test_the_shared_lua_keys_match():
    text = (LUA / "publish.lua").read_text()
    assert lua_string(text, r'return "([^"]+)" \.\. puzzle_id') + "7" == keys.meta(7)
    assert '_M.stem(puzzle_id) .. ":channel"' in text and keys.channel(7) == keys.meta(7) + ":channel"
    assert lua_string(text, r'_M\.SCRIPTS = "([^"]+)"') == keys.SCRIPTS
    assert lua_string(text, r'_M\.DIRTY = "([^"]+)"') == keys.DIRTY


def test_moves_lua_builds_the_per_puzzle_keys_like_python():
    text = (LUA / "moves.lua").read_text()
    for suffix, built in (
        (":pieces", keys.pieces(7)),
        (":groups", keys.groups(7)),
        (":updates", keys.updates(7)),
        (":token:", keys.token(7, 3)[:-1]),
        (":lock:", keys.lock(7, 3)[:-1]),
        (":rate:", keys.rate(7, 5)[:-1]),
        (":ban:", keys.ban(7, 5)[:-1]),
    ):
        assert f's .. "{suffix}"' in text, suffix
        assert keys.meta(7) + suffix == built
