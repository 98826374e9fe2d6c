"""HTTP for the publish service, under /newapi/puzzle.

Validation order on a move, as the contract says: 401 (credentials) -> 403 ->
400 (the body, before the token is looked at) -> 409 (token / piece state).
"""

import math

from flask import Blueprint, Response, jsonify, request, stream_with_context

from object_challenge.accounts.identity import authenticated, current_identity, require_role
from object_challenge.core.bodies import NOT_JSON, bad_json, parse_json
from object_challenge.core.errors import BadRequest, ServiceUnavailable
from object_challenge.core.extensions import redis
from object_challenge.publish import keys, service

bp = Blueprint("publish", __name__, url_prefix="/newapi/puzzle")

MAX_MARK = 100
# puzzle ids, piece numbers and sequence numbers are whole numbers below 2^63 (MongoDB's
# int64); a larger one is a 400 naming it, never a 500 (docs/publish.md)
MAX_ID = 2**63 - 1
LIST_LIMIT, LIST_MAX = 100, 1000


def _bounded(name, value, code):
    if not 0 <= value <= MAX_ID:
        raise BadRequest(f"{name} must be a whole number from 0 to {MAX_ID} (2^63 - 1)", code=code)
    return value


@bp.url_value_preprocessor
def _check_ids(_endpoint, values):
    if not values:
        return
    if "puzzle_id" in values:
        _bounded("the puzzle id", values["puzzle_id"], "bad_puzzle_id")
    if "piece" in values:
        _bounded("the piece number", values["piece"], "bad_piece")


def _json_body():
    raw = request.get_data(cache=True)
    # curl -d sends JSON labelled as a form: a body that starts with "{" is JSON
    if request.mimetype == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        return request.form.to_dict()
    # no body at all is {}; white space alone is not JSON here, as at the gateway
    # (lua/oc/move_contract.lua decode_body)
    if not raw:
        return {}
    body = parse_json(raw)
    if body is None:  # "null": refused as not JSON (request.get_json's None read so)
        raise bad_json(NOT_JSON)
    return body


def _number(body, name, required=True):
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name} is required (a number)", code="bad_move")
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be a number", code="bad_move")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number", code="bad_move") from None
    if not math.isfinite(number):
        raise BadRequest(f"{name} must be a finite number", code="bad_move")
    return number


@bp.post("/")
@require_role("admin")
def create():
    return jsonify(service.create_puzzle(_json_body(), current_identity())), 202


@bp.get("/")
@authenticated
def puzzles():
    """The puzzles a caller may play (active ones), by id: ``?after=<id>&limit=<n>``."""
    limit = _query_int("limit", LIST_LIMIT, 1, LIST_MAX)
    after = _query_int("after", 0, 0, MAX_ID)
    found, more = service.playable_puzzles(after, limit)
    response = jsonify({"puzzles": found, "next_after": found[-1]["puzzle_id"] if more else None})
    response.headers["Cache-Control"] = "no-store"
    return response


def _query_int(name, default, low, high):
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}", code=f"bad_{name}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}", code=f"bad_{name}")
    return value


@bp.get("/<int:puzzle_id>/")
@authenticated
def puzzle(puzzle_id):
    response = jsonify(service.puzzle_view(puzzle_id))
    # the gateway keeps it a second (a move purges it); private: only callers
    # with a token may read a puzzle, and a public entry would answer anonymous ones
    response.headers["Cache-Control"] = "private, max-age=1"
    return response


@bp.get("/<int:puzzle_id>/solution/")
@require_role("admin")
def solution(puzzle_id):
    response = jsonify(service.solution(puzzle_id))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:puzzle_id>/piece/<int:piece>/token/")
@authenticated
def token(puzzle_id, piece):
    mark = request.args.get("mark", "")
    if len(mark) > MAX_MARK or "|" in mark:
        raise BadRequest(f"mark is a free string of at most {MAX_MARK} characters without '|'", code="bad_mark")
    body = service.grant_token(puzzle_id, piece, current_identity().user_id, mark)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:puzzle_id>/piece/<int:piece>/move/", methods=["PATCH"])
@authenticated
def move(puzzle_id, piece):
    player = current_identity().user_id
    body = _json_body()
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object {"token": "...", "x": 0, "y": 0, "r": 0}', code="bad_move")
    x, y, r = _number(body, "x"), _number(body, "y"), _number(body, "r", required=False)
    token = body.get("token")
    if not isinstance(token, str) or not token or "|" in token:
        raise BadRequest("token is required: the string GET .../token/ gave you", code="bad_move")
    result = service.apply_move(puzzle_id, piece, player, token, x, y, r)
    # the sequence number of this move: clients can match it with the stream
    return "", 204, {"X-Puzzle-Seq": str(result["seq"])}


@bp.get("/<int:puzzle_id>/updates/")
@authenticated
def updates(puzzle_id):
    """Catch-up (``?since=N``) as JSON; without ``since`` an SSE stream.

    Behind the gateway the stream is served by Lua (lua/oc/stream.lua); this
    one serves direct callers and the gateway's fallback.
    """
    since = request.args.get("since")
    if since is None:
        return _stream(puzzle_id)
    try:
        since = int(since)
    except ValueError:
        raise BadRequest("since must be a whole number (a sequence number, 0 for all)", code="bad_since") from None
    if not 0 <= since <= MAX_ID:
        raise BadRequest(f"since must be a whole number from 0 to {MAX_ID} (2^63 - 1)", code="bad_since")
    seq, retained = service.updates_since(puzzle_id, since)
    body = f'{{"puzzle_id":{puzzle_id:d},"seq":{seq:d},"updates":[{",".join(retained)}]}}'
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})


def _stream(puzzle_id):
    service.puzzle_view(puzzle_id)  # 404 for an unknown puzzle
    pubsub = redis.client.pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe(keys.channel(puzzle_id))
    # headers go out only once the subscription is confirmed
    confirmed = pubsub.get_message(timeout=5)
    if not confirmed or confirmed.get("type") != "subscribe":
        pubsub.close()
        raise ServiceUnavailable("could not subscribe to the puzzle's updates; retry")
    keepalive = 15.0

    def events():
        try:
            yield ": ok\n\n"
            while True:
                message = pubsub.get_message(timeout=keepalive)
                if message is None:
                    yield ": keep-alive\n\n"
                elif message["type"] == "message":
                    yield f"data: {message['data']}\n\n"
        finally:
            pubsub.close()

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
