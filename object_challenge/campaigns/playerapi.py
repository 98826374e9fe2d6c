"""The stand-in for the external player API (the seed's ``account/info``), as its own small app.

No internet here, so the project ships the API it sweeps. It answers in the seed's shape::

    GET /account/info/?application_id=<key>&account_id=<id>,<id>,...      (at most 100 ids)
    -> {"status": "ok", "meta": {"count": n}, "data": {"<id>": {...} | null, ...}}
    -> {"status": "error", "error": {"code": 407, "message": "REQUEST_LIMIT_EXCEEDED", ...}}

The population (see docs/campaigns.md):

- ids ``1..max_id`` (``PLAYER_API_MAX_ID``, default 1,200,000); ids outside it are ``null``;
- an id inside it is ``null`` when ``blake2b("exists:<id>", 8 bytes) % 10 == 0`` (``is_player``):
  about one in ten, the same ids on every run;
- a player's record depends only on its id and the stand-in's day (``day``, 0 at start):
  ``advance(days)`` makes about a third of the players gain 1..15 battles per day, nobody loses any;
  ``grow(by)`` raises ``max_id`` (new players appear above the old maximum).

Each ``application_id`` has a token bucket (``rps`` calls per second, ``burst`` calls back to back,
``rps <= 0`` = no limit); a call over it is refused with REQUEST_LIMIT_EXCEEDED and counted.
Admin routes (no auth: the stand-in listens on 127.0.0.1): ``POST /_admin/grow {"by"}``,
``POST /_admin/advance {"days"}``, ``POST /_admin/faults {"latency_ms", "fail_ratio"}``,
``POST /_admin/rate {"rps", "burst"?}``, ``GET /_admin/stats``, ``POST /_admin/stats/reset``.

Settings come as arguments; ``python -m object_challenge.campaigns.playerapi`` takes its defaults
from core/config.py (PLAYER_API_ADDR, PLAYER_API_MAX_ID, PLAYER_API_RPS).
"""

import argparse
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from object_challenge.core.config import load

MAX_IDS_PER_CALL = 100
DEFAULT_MAX_ID = 1_200_000
DEFAULT_RPS = 20
EPOCH = 1_500_000_000  # day 0 of the stand-in (2017-07-14 UTC): answers never read the wall clock
DAY = 86_400


def _hash(*parts):
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def is_player(player_id, max_id):
    """True when ``player_id`` has a player in a population whose highest id is ``max_id``."""
    return 1 <= player_id <= max_id and _hash("exists", player_id) % 10 != 0


def battles_on(player_id, day):
    """Battles of a player on ``day``: a base count plus what each day 1..day added (never less)."""
    battles = _hash("battles", player_id) % 5000
    for d in range(1, day + 1):
        v = _hash("day", player_id, d)
        if v % 3 == 0:
            battles += 1 + (v >> 8) % 15
    return battles


def last_active_day(player_id, day):
    for d in range(day, 0, -1):
        if _hash("day", player_id, d) % 3 == 0:
            return d
    return 0


def player_record(player_id, day):
    """The ``account/info`` record of an existing player on ``day`` (a pure function)."""
    battles = battles_on(player_id, day)
    created_at = EPOCH - 3 * 365 * DAY + player_id * 60
    active = last_active_day(player_id, day)
    last_battle = max(created_at, EPOCH + active * DAY - _hash("time", player_id, active) % DAY)
    if battles == 0:
        last_battle = 0
    win_permille = 440 + _hash("skill", player_id) % 120
    return {
        "account_id": player_id,
        "nickname": f"player_{player_id}",
        "created_at": created_at,
        "last_battle_time": last_battle,
        "updated_at": max(created_at, EPOCH + day * DAY),
        "statistics": {"all": {"battles": battles, "wins": battles * win_permille // 1000}},
    }


def _error(code, message, field_name=None, value=None):
    error = {"code": code, "message": message}
    if field_name is not None:
        error.update(field=field_name, value=value)
    return {"status": "error", "error": error}


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class StandIn:
    """The stand-in's whole state: population, day, limits, faults, counters (thread-safe)."""

    max_id: int = DEFAULT_MAX_ID
    rps: float = DEFAULT_RPS
    burst: float | None = None  # calls back to back; default: one second's worth (rps)
    day: int = 0
    latency_ms: float = 0.0
    fail_ratio: float = 0.0
    clock: object = time.monotonic
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._buckets = {}
        self.reset_stats()

    # -- the population ------------------------------------------------------------------
    def answer(self, ids):
        day, max_id = self.day, self.max_id
        return {str(i): (player_record(i, day) if is_player(i, max_id) else None) for i in ids}

    def grow(self, by):
        with self._lock:
            self.max_id += int(by)
            return self.max_id

    def advance(self, days):
        with self._lock:
            self.day += int(days)
            return self.day

    # -- limits and faults ---------------------------------------------------------------
    def set_rate(self, rps, burst=None):
        with self._lock:
            self.rps, self.burst = float(rps), burst
            self._buckets.clear()

    def set_faults(self, latency_ms=None, fail_ratio=None):
        with self._lock:
            if latency_ms is not None:
                self.latency_ms = float(latency_ms)
            if fail_ratio is not None:
                self.fail_ratio = float(fail_ratio)

    def admit(self, key):
        """Take a token from ``key``'s bucket; False (and a refusal counted) when it is empty."""
        with self._lock:
            per_key = self.stats["by_key"].setdefault(key, {"calls": 0, "refusals": 0})
            self.stats["calls"] += 1
            per_key["calls"] += 1
            if self.rps <= 0:
                return True
            capacity = max(1.0, self.burst if self.burst is not None else self.rps)
            now = self.clock()
            bucket = self._buckets.get(key) or _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * self.rps)
            bucket.stamp = now
            self._buckets[key] = bucket
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            self.stats["refusals"] += 1
            per_key["refusals"] += 1
            return False

    def inject_failure(self):
        """Whether this admitted call fails: evenly spread, floor(n * ratio) failures in n calls."""
        with self._lock:
            self.stats["admitted"] += 1
            n = self.stats["admitted"]
            fail = math.floor(n * self.fail_ratio) > math.floor((n - 1) * self.fail_ratio)
            if fail:
                self.stats["failures"] += 1
            return fail

    def count_answer(self, data):
        with self._lock:
            self.stats["ids"] += len(data)
            self.stats["found"] += sum(1 for v in data.values() if v is not None)

    def reset_stats(self):
        with self._lock:
            self.stats = {
                "calls": 0,
                "refusals": 0,
                "admitted": 0,
                "failures": 0,
                "ids": 0,
                "found": 0,
                "by_key": {},
                "since": time.time(),
            }

    def snapshot(self):
        with self._lock:
            by_key = {k: dict(v) for k, v in self.stats["by_key"].items()}
            return {
                **self.stats,
                "by_key": by_key,
                "max_id": self.max_id,
                "day": self.day,
                "rps": self.rps,
                "burst": self.burst,
                "latency_ms": self.latency_ms,
                "fail_ratio": self.fail_ratio,
            }


def _parse_ids(raw):
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            return None
        ids.append(int(part))
    return list(dict.fromkeys(ids))


def create_app(state=None, **settings):
    """The stand-in's WSGI app; ``settings`` are StandIn's fields when no ``state`` is given."""
    state = state or StandIn(**settings)
    app = Flask("object_challenge.campaigns.playerapi")
    app.extensions["playerapi"] = state

    @app.get("/account/info/")
    def account_info():
        key = request.args.get("application_id", "")
        if not key:
            return jsonify(_error(402, "APPLICATION_ID_NOT_SPECIFIED", "application_id"))
        if not state.admit(key):
            return jsonify(_error(407, "REQUEST_LIMIT_EXCEEDED"))
        if state.latency_ms > 0:
            time.sleep(state.latency_ms / 1000)
        if state.inject_failure():
            return jsonify(_error(504, "SOURCE_NOT_AVAILABLE")), 503
        raw = request.args.get("account_id", "")
        ids = _parse_ids(raw)
        if ids is None:
            return jsonify(_error(407, "INVALID_ACCOUNT_ID", "account_id", raw))
        if not ids:
            return jsonify(_error(402, "ACCOUNT_ID_NOT_SPECIFIED", "account_id"))
        if len(ids) > MAX_IDS_PER_CALL:
            return jsonify(_error(407, "ACCOUNT_ID_LIST_LIMIT_EXCEEDED", "account_id", raw))
        data = state.answer(ids)
        state.count_answer(data)
        return jsonify({"status": "ok", "meta": {"count": len(data)}, "data": data})

    def _body_number(name, default=None, minimum=0):
        body = request.get_json(silent=True) or {}
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            return None
        return value

    @app.post("/_admin/grow")
    def admin_grow():
        by = _body_number("by")
        if by is None or int(by) != by:
            return jsonify(error="bad_request", message='body must be {"by": n}, n a whole number >= 0'), 400
        return jsonify(max_id=state.grow(by))

    @app.post("/_admin/advance")
    def admin_advance():
        days = _body_number("days")
        if days is None or int(days) != days:
            return jsonify(error="bad_request", message='body must be {"days": n}, n a whole number >= 0'), 400
        return jsonify(day=state.advance(days))

    @app.post("/_admin/faults")
    def admin_faults():
        body = request.get_json(silent=True) or {}
        latency = _body_number("latency_ms")
        ratio = _body_number("fail_ratio")
        if ("latency_ms" in body and latency is None) or ("fail_ratio" in body and (ratio is None or ratio > 1)):
            return jsonify(error="bad_request", message="latency_ms >= 0 and 0 <= fail_ratio <= 1"), 400
        state.set_faults(latency, ratio)
        return jsonify(latency_ms=state.latency_ms, fail_ratio=state.fail_ratio)

    @app.post("/_admin/rate")
    def admin_rate():
        rps = _body_number("rps", minimum=-math.inf)
        burst = _body_number("burst", minimum=1)
        if rps is None:
            return jsonify(
                error="bad_request", message='body must be {"rps": n, "burst"?: m}; rps <= 0 = no limit'
            ), 400
        state.set_rate(rps, burst)
        return jsonify(rps=state.rps, burst=state.burst)

    @app.get("/_admin/stats")
    def admin_stats():
        return jsonify(state.snapshot())

    @app.post("/_admin/stats/reset")
    def admin_stats_reset():
        state.reset_stats()
        return jsonify(state.snapshot())

    return app


class Running:
    """A stand-in served from a background thread (tests and benchmarks): ``url``, ``state``, ``stop()``."""

    def __init__(self, server, thread, state):
        self.server, self.thread, self.state = server, thread, state
        self.url = f"http://{server.host}:{server.port}"

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def _make_server(host, port, quiet=True, **settings):
    class Handler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            if not quiet:
                super().log_request(*args, **kwargs)

    state = StandIn(**settings)
    return make_server(host, port, create_app(state), threaded=True, request_handler=Handler), state


def start(host="127.0.0.1", port=0, quiet=True, **settings):
    """Serve the stand-in in a daemon thread (port 0: a free one) and return a ``Running``."""
    server, state = _make_server(host, port, quiet=quiet, **settings)
    thread = threading.Thread(target=server.serve_forever, name="playerapi", daemon=True)
    thread.start()
    return Running(server, thread, state)


def serve(host, port, quiet=True, **settings):
    """Serve the stand-in in the foreground until interrupted (``quiet=False`` logs each request)."""
    server, state = _make_server(host, port, quiet=quiet, **settings)
    print(f"player API stand-in on http://{host}:{server.port} (max_id={state.max_id}, rps={state.rps})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None):
    cfg = load()  # the settings (PLAYER_API_ADDR, _MAX_ID, _RPS) as defaults
    host, _, port = cfg.PLAYER_API_ADDR.rpartition(":")
    parser = argparse.ArgumentParser(prog="python -m object_challenge.campaigns.playerapi")
    parser.add_argument("--host", default=host or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(port))
    parser.add_argument("--max-id", type=int, default=cfg.PLAYER_API_MAX_ID)
    parser.add_argument("--rps", type=float, default=cfg.PLAYER_API_RPS)
    parser.add_argument("--burst", type=float, default=None)
    parser.add_argument("--day", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    serve(
        args.host, args.port, quiet=not args.verbose, max_id=args.max_id, rps=args.rps, burst=args.burst, day=args.day
    )


if __name__ == "__main__":
    main()
