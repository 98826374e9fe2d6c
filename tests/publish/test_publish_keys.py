"""The move contract's keys on both edges: publish/keys.py and board.py (the service) and
lua/oc/keys.lua, move_contract.lua (the gateway, run in nginx) against tests/cases/moves.json."""

import pytest
from helpers import load_cases
from lua_harness import LuaHarness

from object_challenge.publish import keys
from object_challenge.publish.board import Board, Refused

CONTRACT = load_cases("moves.json")
EXAMPLE = CONTRACT["example"]
ARGS = (EXAMPLE["puzzle"], EXAMPLE["piece"], EXAMPLE["player"])


@pytest.fixture(scope="module")
def lua():
    harness = LuaHarness().start()
    yield harness
    harness.stop()


class RecordingRedis:
    """Just enough of a redis client for Board: each script records the KEYS it is called with."""

    def __init__(self):
        self.calls = []

    def register_script(self, _text):
        def script(keys, args):
            self.calls.append(keys)
            return '{"refused": "no_piece"}'

        return script


def board_keys(step):
    client = RecordingRedis()
    board = Board(
        client,
        {
            "PIECE_LOCK_SECONDS": 5,
            "MOVE_TOKEN_SECONDS": 300,
            "MOVE_RATE_LIMIT": 30,
            "MOVE_RATE_WINDOW_SECONDS": 13,
            "MOVE_BAN_SECONDS": 5,
        },
    )
    with pytest.raises(Refused):
        if step == "token":
            board.token(*ARGS)
        else:
            board.move(*ARGS, token="tok", x=5, y=6)
    return client.calls[-1]


@pytest.mark.parametrize("step", ["token", "move"])
def test_the_service_sends_the_script_keys_in_the_contract_order(step):
    assert board_keys(step) == CONTRACT[f"{step}_keys"]


@pytest.mark.parametrize("step", ["token", "move"])
def test_the_gateway_sends_the_script_keys_in_the_contract_order(lua, step):
    sent = lua.run("script_keys", {"example": EXAMPLE, "move": CONTRACT["move"]})
    assert sent[step] == CONTRACT[f"{step}_keys"]


def test_lua_builds_every_publish_key_like_python(lua):
    built = lua.run("keys", EXAMPLE)
    names = ("meta", "channel", "scripts", "dirty", "stats", "token_keys", "move_keys")
    assert {name: built[name] for name in names} == {
        "meta": keys.meta(EXAMPLE["puzzle"]),
        "channel": keys.channel(EXAMPLE["puzzle"]),
        "scripts": keys.SCRIPTS,
        "dirty": keys.DIRTY,
        "stats": keys.STATS,
        "token_keys": keys.token_keys(*ARGS),
        "move_keys": keys.move_keys(*ARGS),
    }
    assert built["channel"] == CONTRACT["channel"] and built["scripts"] == CONTRACT["scripts"]
    assert built["stats"] == CONTRACT["stats"]
