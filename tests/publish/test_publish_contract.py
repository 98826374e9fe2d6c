"""What each script refusal becomes, on both edges, from one case table (tests/cases/moves.json):
the publish service's errors (service.py) and the gateway's (lua/oc/move_contract.lua)."""

import flask
import pytest
from helpers import load_cases
from lua_harness import LuaHarness

from object_challenge.core.errors import ApiError
from object_challenge.publish import board, service
from object_challenge.publish.board import Refused

CONTRACT = load_cases("moves.json")
EXAMPLE = CONTRACT["example"]
REFUSALS = CONTRACT["refusals"]


@pytest.fixture(scope="module")
def lua():
    harness = LuaHarness().start()
    yield harness
    harness.stop()


class RefusingBoard:
    def __init__(self, why, retry_ms):
        self.refused = Refused(why, retry_ms)

    def token(self, *_args):
        raise self.refused

    move = token


def service_answer(case, monkeypatch):
    app = flask.Flask(__name__)
    app.config.update(CONTRACT["settings"])
    monkeypatch.setattr(board, "current", lambda: RefusingBoard(case["why"], case["retry_ms"]))
    p, n, player = EXAMPLE["puzzle"], EXAMPLE["piece"], EXAMPLE["player"]
    with app.app_context(), pytest.raises(ApiError) as refused:
        if case["step"] == "token":
            service.grant_token(p, n, player, "")
        else:
            service.apply_move(p, n, player, "tok", 5, 6, None)
    err = refused.value
    return {"status": err.status, "code": err.code, "message": err.message, "headers": err.headers}


def expected(case):
    return {k: case[k] for k in ("status", "code", "message", "headers")}


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: f"{c['step']}-{c['why']}")
def test_the_service_refuses_as_the_contract_says(case, monkeypatch):
    assert service_answer(case, monkeypatch) == expected(case)


def test_the_gateway_refuses_as_the_contract_says(lua):
    answers = lua.run("refusals", {"example": EXAMPLE, "conf": CONTRACT["conf"], "refusals": REFUSALS})
    assert answers == [expected(case) for case in REFUSALS]


def test_the_gateway_leaves_a_board_redis_lost_to_the_service(lua):
    missing = [{"step": "move", "why": "missing", "retry_ms": None}]
    assert lua.run("refusals", {"example": EXAMPLE, "conf": CONTRACT["conf"], "refusals": missing}) == ["service"]
