"""The Lua side builds the same Redis keys as object_challenge/publish/keys.py."""
import re
from pathlib import Path

from object_challenge.publish import keys

LUA = Path(__file__).resolve().parents[2] / "lua" / "oc"


def test_moves_lua_builds_the_same_keys():
    text = (LUA / "moves.lua").read_text()
    stem = re.search(r'function keys\.stem\(p\) return "([^"]+)" \.\. p end', text).group(1)
    assert stem + "7" == keys.meta(7)
    for suffix, built in ((":pieces", keys.pieces(7)), (":groups", keys.groups(7)), (":updates", keys.updates(7)),
                          (":channel", keys.channel(7)), (":token:", keys.token(7, 3)[:-1]),
                          (":lock:", keys.lock(7, 3)[:-1]), (":rate:", keys.rate(7, 5)[:-1]),
                          (":ban:", keys.ban(7, 5)[:-1])):
        assert f's .. "{suffix}"' in text, suffix
        assert stem + "7" + suffix == built
    assert f'return "{keys.SCRIPTS}"' in text
    assert f'return "{keys.DIRTY}"' in text


def test_stream_lua_subscribes_to_the_channel_move_lua_publishes_on():
    text = (LUA / "stream.lua").read_text()
    assert '"oc:pub:puzzle:" .. puzzle_id .. ":channel"' in text
    assert keys.channel(42) == "oc:pub:puzzle:" + "42" + ":channel"
    assert '"oc:pub:puzzle:" .. puzzle_id\n' in text and keys.meta(42) == "oc:pub:puzzle:42"
