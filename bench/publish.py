#!/usr/bin/env python3
"""Publish benchmarks (issue 8), through the gateway, in one run.

    python bench/run.py publish [-- --duration 5 --rounds 2 --players 50 --watchers 1000]

Starts the whole stack on free ports (RATE_LIMITS=off; MOVE_RATE_LIMIT raised so
the per-player move rate never bans a benchmark player), makes 50 players and a
10x10 puzzle on a 4000x4000 table, puts every piece in a cell of its own (300 px
apart, so no move ever joins: every move does the full join search and finds
nothing), then:

1. moves: wrk, one connection per player (-t50 -c50), each player looping
   GET .../piece/<i>/token/ -> PATCH .../piece/<i>/move/ on its own piece,
   on two edges:
     gateway         through the gateway, whose oc.moves (lua/oc/moves.lua) runs the
                     publish service's own Redis scripts (the target is measured here)
     service_direct  straight at the publish service (Python, no gateway), for contrast
   alternated (A B C A B C) with
   trivial: the same players on GET /newapi/whoami (an authenticated Flask view
   on the api service, through the same gateway).
   Reported: accepted moves/s, requests/s, p50/p99 per kind of call, and the
   cost ratio  trivial req/s / move-loop req/s  (target <= 1.25).
2. watchers: N SSE connections on the puzzle (4 client processes), then moves
   100 ms apart; the delay of each move to each watcher is the time from just
   before the PATCH is sent to the watcher reading its data line
   (target: p99 < 100 ms).

Writes var/bench/publish.json.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402

WRK_SCRIPT = ROOT / "bench" / "publish_wrk.lua"
CELLS = 13


def cell(i):
    return 150 + 300 * (i % CELLS), 150 + 300 * (i // CELLS)


def stack_env():
    return isolated_env(RATE_LIMITS="off", MOVE_RATE_LIMIT="1000000000")


def auth(token):
    return {"Authorization": f"Token {token}"}


def prepare(stack, players):
    names = [f"bench{i:03d}" for i in range(1, players + 1)]
    stack.add_users(names)
    out = stack.manage("puzzle", "create", "10", "10", "--table", "4000x4000", "--now").stdout
    puzzle_id = json.loads(out.strip().splitlines()[-1])["puzzle_id"]
    session = requests.Session()
    session.headers.update(auth("token_admin"))
    base = f"{stack.url}/newapi/puzzle/{puzzle_id}"
    deadline = time.monotonic() + 10
    while session.get(f"{stack.url}/newapi/whoami", headers=auth(f"tok_{names[-1]}"), timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("bench publish: the new players never reached the gateway")
        time.sleep(0.1)
    start = session.get(f"{base}/", timeout=5).json()
    size, cols = start["piece_width"], start["cols"]
    targets = {n: cell(n) for n in range(1, len(start["pieces"]))}
    for i in range(1, players + 1):  # the wrk loop moves piece i between cell(i) and cell(100 + i)
        for where in (cell(i), cell(100 + i)):
            if _joins(i, where, 0, (start["pieces"][0]["x"], start["pieces"][0]["y"]), cols, size):
                raise SystemExit(f"bench publish: cell {where} of piece {i} would join the fixed piece 0")
    for n in safe_order({p["id"]: (p["x"], p["y"]) for p in start["pieces"]}, targets, cols, size):
        grant = session.get(f"{base}/piece/{n}/token/", timeout=5)
        x, y = targets[n]
        answer = session.patch(
            f"{base}/piece/{n}/move/", json={"token": grant.json()["token"], "x": x, "y": y}, timeout=5
        )
        if answer.status_code != 204:
            raise SystemExit(f"bench publish: placing piece {n}: {answer.status_code} {answer.text}")
    state = session.get(f"{base}/", timeout=5).json()
    joined = [p["id"] for p in state["pieces"] if p["group"] != p["id"]]
    if joined:  # safe_order rules this out; if it happens, it is a bug, not bad luck
        raise SystemExit(f"bench publish: pieces {joined} joined while placing (a bug in safe_order)")
    return puzzle_id


JOIN_MARGIN = 60  # px: the join tolerance (50) and some room


def _neighbours(n, count, cols):
    row, col = divmod(n, cols)
    for dr, dc in ((0, -1), (0, 1), (-1, 0), (1, 0)):
        r, c = row + dr, col + dc
        if 0 <= c < cols and 0 <= r * cols + c < count and r >= 0:
            yield r * cols + c


def _joins(a, a_at, b, b_at, cols, size):
    """Would piece ``a`` at ``a_at`` join its neighbour ``b`` at ``b_at`` (within JOIN_MARGIN)?"""
    dx = (b % cols - a % cols) * size
    dy = (b // cols - a // cols) * size
    return abs(b_at[0] - a_at[0] - dx) <= JOIN_MARGIN and abs(b_at[1] - a_at[1] - dy) <= JOIN_MARGIN


def safe_order(start, targets, cols, size):
    """An order to move each piece of ``targets`` from ``start`` to its target with no join.

    Targets are 300 px apart, so two placed pieces never join; a piece can only join a
    neighbour still at its random start (or the fixed piece 0). Before a piece goes to its
    target, each neighbour whose start position it would join is placed first.
    """
    at, order, placing = dict(start), [], set()

    def place(n):
        placing.add(n)
        for m in _neighbours(n, len(start), cols):
            if m in targets and m not in order and m not in placing and _joins(n, targets[n], m, at[m], cols, size):
                place(m)
        for m in _neighbours(n, len(start), cols):
            if _joins(n, targets[n], m, at[m], cols, size):
                raise SystemExit(f"bench publish: piece {n} at {targets[n]} cannot avoid joining piece {m}")
        at[n] = targets[n]
        order.append(n)

    for n in sorted(targets):
        if n not in order:
            place(n)
    return order


def wrk(url, args, mode, target, duration):
    cmd = [
        "wrk",
        f"-t{args.players}",
        f"-c{args.players}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        mode,
        str(target),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["command"] = shlex.join(cmd)
    return result


# -- SSE watchers ------------------------------------------------------------------
SEQ = re.compile(rb'"seq":(\d+)')


class _Watcher(asyncio.Protocol):
    """One SSE connection: records (arrival time, bytes) and nothing else; parsed afterwards."""

    def __init__(self, request, chunks, ready):
        self.request, self.chunks, self.ready, self.seen_ok = request, chunks, ready, False

    def connection_made(self, transport):
        transport.write(self.request)

    def data_received(self, data):
        self.chunks.append((time.time(), data))
        if not self.seen_ok and b": ok" in data:
            self.seen_ok = True
            self.ready.append(1)


def _watchers_process(host, port, path, tokens, conn, seconds):
    async def main():
        loop = asyncio.get_running_loop()
        ready, streams, transports = [], [], []
        stop_at = time.time() + seconds
        for token in tokens:
            chunks = []
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {token}\r\n"
                f"Accept: text/event-stream\r\n\r\n"
            ).encode()
            transport, _ = await loop.create_connection(
                lambda request=request, chunks=chunks: _Watcher(request, chunks, ready), host, port
            )
            streams.append(chunks)
            transports.append(transport)
        while len(ready) < len(tokens) and time.time() < stop_at:
            await asyncio.sleep(0.05)
        conn.send(("ready", len(ready)))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "done" from the parent
        for transport in transports:
            transport.close()
        events = []
        for chunks in streams:
            for at, data in chunks:
                events.extend((int(m.group(1)), at) for m in SEQ.finditer(data))
        conn.send(("events", events))

    asyncio.run(main())


def watchers_bench(stack, puzzle_id, args, mover_url):
    host, port = "127.0.0.1", int(stack.settings["GATEWAY_PORT"])
    path = f"/newapi/puzzle/{puzzle_id}/updates/"
    procs, pipes = [], []
    per = [
        args.watchers // args.watcher_procs + (1 if i < args.watchers % args.watcher_procs else 0)
        for i in range(args.watcher_procs)
    ]
    listen = 20 + args.moves * args.move_gap
    for i, count in enumerate(per):
        parent, child = multiprocessing.Pipe()
        tokens = [f"tok_bench{(i * 1000 + k) % args.players + 1:03d}" for k in range(count)]
        proc = multiprocessing.Process(target=_watchers_process, args=(host, port, path, tokens, child, listen))
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    connected = sum(pipe.recv()[1] for pipe in pipes)
    session = requests.Session()
    session.headers.update(auth("tok_bench001"))
    base = f"{mover_url}/newapi/puzzle/{puzzle_id}/piece/1"
    sent, flip = {}, 0
    for _ in range(args.moves):
        token = session.get(f"{base}/token/", timeout=5).json()["token"]
        flip = 1 - flip
        x, y = cell(101 if flip else 1)
        started = time.time()
        answer = session.patch(f"{base}/move/", json={"token": token, "x": x, "y": y}, timeout=5)
        sent[int(answer.headers["X-Puzzle-Seq"])] = started
        time.sleep(args.move_gap)
    time.sleep(1.0)  # the last move reaches everyone
    for pipe in pipes:
        pipe.send("done")
    delays, received = [], 0
    for pipe in pipes:
        _kind, events = pipe.recv()
        for seq, at in events:
            if seq in sent:
                delays.append((at - sent[seq]) * 1000)
                received += 1
    for proc in procs:
        proc.join(timeout=30)
    delays.sort()

    def pct(p):
        return round(delays[max(0, min(len(delays) - 1, int(len(delays) * p / 100 + 0.5) - 1))], 2) if delays else None

    return {
        "watchers": args.watchers,
        "connected": connected,
        "moves": args.moves,
        "mover": mover_url,
        "deliveries_expected": connected * args.moves,
        "deliveries": received,
        "delay_p50_ms": pct(50),
        "delay_p99_ms": pct(99),
        "delay_max_ms": round(delays[-1], 2) if delays else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench publish")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A/B alternations")
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--watcher-procs", type=int, default=4)
    parser.add_argument("--moves", type=int, default=40, help="moves sent to the watchers")
    parser.add_argument("--move-gap", type=float, default=0.1, help="seconds between those moves")
    args = parser.parse_args(argv)
    if args.players > 50:
        raise SystemExit("at most 50 players: the puzzle has two private cells for each of them")

    var = Path(tempfile.mkdtemp(prefix="oc-bench-publish-"))
    stack = Stack(env=stack_env(), var_dir=var, mongo_file=False, quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    try:
        puzzle_id = prepare(stack, args.players)
        edges = {"gateway": stack.url, "service_direct": f"http://{stack.settings['PUBLISH_ADDR']}"}
        if args.warmup:
            for url in edges.values():
                wrk(url, args, "cycle", puzzle_id, args.warmup)
            wrk(stack.url, args, "get", "/newapi/whoami", args.warmup)
        runs = {"trivial": [], **{name: [] for name in edges}}
        for _ in range(args.rounds):
            for name, url in edges.items():
                runs[name].append(wrk(url, args, "cycle", puzzle_id, args.duration))
            runs["trivial"].append(wrk(stack.url, args, "get", "/newapi/whoami", args.duration))

        def mean(name, field):
            return sum(r[field] for r in runs[name]) / len(runs[name])

        trivial_rps = mean("trivial", "rps")
        last_t = runs["trivial"][-1]
        print(
            f"  trivial      {trivial_rps:8.0f} req/s GET /newapi/whoami  p50 {last_t['get']['p50_ms']:.2f} "
            f"p99 {last_t['get']['p99_ms']:.2f} ms",
            flush=True,
        )
        moves = {}
        for name in edges:
            rps, accepted, last = mean(name, "rps"), mean(name, "accepted_per_s"), runs[name][-1]
            ratio = trivial_rps / rps if rps else float("inf")
            moves[name] = {
                "accepted_per_s": round(accepted, 1),
                "rps": round(rps, 1),
                "cost_ratio": round(ratio, 3),
                "token_p50_ms": last["token"]["p50_ms"],
                "token_p99_ms": last["token"]["p99_ms"],
                "move_p50_ms": last["move"]["p50_ms"],
                "move_p99_ms": last["move"]["p99_ms"],
                "refused": sum(r["refused"] for r in runs[name]),
                "refusals": " ".join(r.get("refusals", "") for r in runs[name]).strip(),
                "errors": sum(r["errors"] for r in runs[name]),
            }
            if name == "gateway":
                moves[name].update(target=1.25, ok=ratio <= 1.25)
            print(
                f"  {name:<12} {accepted:8.0f} accepted moves/s ({rps:.0f} req/s: token + move)  "
                f"token p50 {last['token']['p50_ms']:.2f} p99 {last['token']['p99_ms']:.2f} ms  "
                f"move p50 {last['move']['p50_ms']:.2f} p99 {last['move']['p99_ms']:.2f} ms  "
                f"refused {moves[name]['refused']}  errors {moves[name]['errors']}",
                flush=True,
            )
            if moves[name]["refusals"]:
                print(f"  {name:<12} refused: {moves[name]['refusals'][:300]}", flush=True)
            verdict = f"(target <= 1.25) {'PASS' if ratio <= 1.25 else 'FAIL'}" if name == "gateway" else "(contrast)"
            print(f"  {name:<12} cost of a move-loop call / a trivial call: {ratio:.2f} {verdict}", flush=True)

        print(f"  {args.watchers} SSE watchers ...", flush=True)
        watch = watchers_bench(stack, puzzle_id, args, stack.url)
        watch_ok = (
            watch["deliveries"] == watch["deliveries_expected"]
            and watch["connected"] == args.watchers
            and watch["delay_p99_ms"] is not None
            and watch["delay_p99_ms"] < 100
        )
        print(
            f"  watchers {watch['connected']}/{args.watchers} connected, {watch['deliveries']}/"
            f"{watch['deliveries_expected']} deliveries, delay p50 {watch['delay_p50_ms']} ms "
            f"p99 {watch['delay_p99_ms']} ms max {watch['delay_max_ms']} ms (target p99 < 100) "
            f"{'PASS' if watch_ok else 'FAIL'}",
            flush=True,
        )
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.node()} {os.cpu_count()} cpus",
            "settings": vars(args),
            "trivial_rps": round(trivial_rps, 1),
            "moves": moves,
            "watchers": {**watch, "target_p99_ms": 100, "pass": watch_ok},
            "runs": runs,
        }
        out = ROOT / "var" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "publish.json").write_text(json.dumps(result, indent=1))
        print(f"results in {out / 'publish.json'}")
        return 0 if moves["gateway"]["ok"] and watch_ok else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
