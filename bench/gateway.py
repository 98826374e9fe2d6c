#!/usr/bin/env python3
"""Gateway benchmarks (issue 4): wrk pairs measured side by side in one run.

    python bench/run.py gateway [-- --duration 5 --rounds 2 --connections 50]

Starts the whole stack on free ports with RATE_LIMITS=off (services, stores,
gateway as `make run` does), then for each pair runs wrk on A and B
alternately (A B A B ...) and reports the mean requests/s of each and A/B:

  edge 403 (token_1 -> pushe3) / no-token 401            target >= 0.6
  create via gateway / create straight at storage          target >= 0.9
  cached authenticated GET (HIT) / bare Lua JSON (GET /)  target >= 0.5
  Flask-decided 403 (gateway with no snapshot) / edge 403  contrast
  edge 403 with gateway metrics / the same with GATEWAY_METRICS=off  target >= 0.95

Writes var/bench/gateway.json.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402
from object_challenge.dev.devstores import free_port, wait_for_port  # noqa: E402

WRK_SCRIPT = ROOT / "bench" / "gateway.lua"
TOKEN_1 = ["Authorization: Token token_1", "Content-Type: application/json"]


def stack_env():
    return isolated_env(RATE_LIMITS="off")


class SecondGateway:
    """A second gateway on the same services with other settings (``name`` names its prefix)."""

    def __init__(self, stack, name, **overrides):
        self.port = free_port()
        self.prefix = stack.var / f"nginx-{name}"
        env = dict(stack.env, GATEWAY_PORT=str(self.port), METRICS_ADDR=f"127.0.0.1:{free_port()}", **overrides)
        subprocess.run(
            [sys.executable, str(ROOT / "nginx" / "render.py"), "--prefix", str(self.prefix)],
            env=env,
            check=True,
            capture_output=True,
        )
        conf = self.prefix / "conf" / "nginx.conf"
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process, what=f"{name} gateway")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def fallback_gateway(stack):
    """Pointed at a Redis db with no snapshot: every POST /bucket is proxied to the api
    service (the old design)."""
    return SecondGateway(stack, "fallback", REDIS_URL=stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/9")


def metrics_gateways(stack):
    """Two more gateways alike but for GATEWAY_METRICS (on, off: no log-phase counting),
    started the same way, so that nothing but the counting differs between them."""
    return SecondGateway(stack, "metered", GATEWAY_METRICS="on"), SecondGateway(
        stack, "unmetered", GATEWAY_METRICS="off"
    )


def scenarios(stack, fallback, metered, unmetered, run_id):
    gw, storage = stack.url, f"http://{stack.settings['STORAGE_ADDR']}"
    identity = [
        "X-User-Id: 1",
        "X-User-Name: a",
        "X-User-Role: user",
        f"X-Gateway-Secret: {stack.settings['GATEWAY_SECRET']}",
        "Content-Type: application/json",
    ]
    deny = '{"bucket": "pushe3"}'
    return {
        "edge_403": dict(url=gw, method="POST", path="/bucket", body=deny, headers=TOKEN_1, expect=403),
        "edge_403_metered": dict(
            url=metered.url, method="POST", path="/bucket", body=deny, headers=TOKEN_1, expect=403
        ),
        "edge_403_unmetered": dict(
            url=unmetered.url, method="POST", path="/bucket", body=deny, headers=TOKEN_1, expect=403
        ),
        "no_token_401": dict(
            url=gw, method="POST", path="/bucket", body=deny, headers=["Content-Type: application/json"], expect=401
        ),
        "create_gateway": dict(url=gw, method="POST", path="/bucket", unique=f"g{run_id}", headers=TOKEN_1, expect=201),
        "create_direct": dict(
            url=storage, method="POST", path="/arvan", unique=f"d{run_id}", headers=identity, expect=201
        ),
        "cached_get": dict(
            url=gw,
            method="GET",
            path="/newapi/buckets",
            headers=["Authorization: Token token_3"],
            expect=200,
            cache="HIT",
        ),
        "bare_lua": dict(url=gw, method="GET", path="/", headers=[], expect=200),
        "flask_403": dict(url=fallback.url, method="POST", path="/bucket", body=deny, headers=TOKEN_1, expect=403),
    }


PAIRS = [  # creation last: its slow tail (MongoDB writes) must not overlap the others
    ("edge refusal 403 / no-token 401", "edge_403", "no_token_401", 0.6),
    ("edge 403 metrics on / metrics off", "edge_403_metered", "edge_403_unmetered", 0.95),
    ("cached GET HIT / bare Lua JSON", "cached_get", "bare_lua", 0.5),
    ("Flask-decided 403 / edge 403 (old design, contrast)", "flask_403", "edge_403", None),
    ("create via gateway / straight at storage", "create_gateway", "create_direct", 0.9),
]


def preflight(name, s):
    """One request by hand: the scenario answers what it claims to measure."""
    body = s.get("body")
    if s.get("unique"):
        body = json.dumps({"bucket": f"{s['unique']}-preflight"})
    headers = dict(h.split(": ", 1) for h in s["headers"])
    for _ in range(2):  # the second one is the cache HIT
        answer = requests.request(s["method"], s["url"] + s["path"], data=body, headers=headers, timeout=10)
    if s.get("unique"):
        answer = requests.request(
            s["method"],
            s["url"] + s["path"],
            data=json.dumps({"bucket": f"{s['unique']}-preflight2"}),
            headers=headers,
            timeout=10,
        )
    if answer.status_code != s["expect"]:
        raise SystemExit(f"bench {name}: expected {s['expect']}, got {answer.status_code} {answer.text[:200]}")
    if s.get("cache") and answer.headers.get("X-Cache-Status") != s["cache"]:
        raise SystemExit(f"bench {name}: expected X-Cache-Status {s['cache']}, got {answer.headers}")


def nginx_workers(prefix):
    master = int((prefix / "logs" / "nginx.pid").read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def wrk(s, args, round_no, workers=()):
    mode = f"unique:{s['unique']}r{round_no}" if s.get("unique") else "fixed"
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        s["url"] + s["path"],
        "--",
        s["method"],
        s["path"],
        s.get("body") or "-",
        mode,
        *s["headers"],
    ]
    before = cpu_ticks(workers)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ticks = cpu_ticks(workers) - before
    result = json.loads(out.strip().splitlines()[-1])
    result["command"] = shlex.join(cmd)
    # nginx CPU per request: steadier than req/s on a machine others share
    if workers and result["requests"]:
        result["nginx_cpu_us"] = round(ticks * 1e6 / os.sysconf("SC_CLK_TCK") / result["requests"], 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench gateway")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A/B alternations per pair")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=1, help="seconds of each scenario first, not counted")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temp dir (logs) afterwards")
    parser.add_argument("--only", default="", help="run only the pairs whose title contains this text")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="pause after each wrk run so requests still queued upstream finish"
    )
    args = parser.parse_args(argv)

    var = Path(tempfile.mkdtemp(prefix="oc-bench-gateway-"))
    stack = Stack(env=stack_env(), var_dir=var, mongo_file=False, quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    fallback = metered = unmetered = None
    try:
        fallback = fallback_gateway(stack)
        metered, unmetered = metrics_gateways(stack)
        run_id = uuid.uuid4().hex[:8]
        table = scenarios(stack, fallback, metered, unmetered, run_id)
        for name, s in table.items():
            preflight(name, s)
        wanted = {n for title, a, b, _ in PAIRS if args.only in title for n in (a, b)}
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            for s in (table[n] for n in table if n in wanted):
                wrk(s, warm, "w")
                time.sleep(args.settle)
        measured, report = {}, []
        prefixes = {stack.url: stack.var / "nginx"}
        prefixes.update((g.url, g.prefix) for g in (fallback, metered, unmetered))
        for title, a, b, target in PAIRS:
            if args.only not in title:
                continue
            runs = {a: [], b: []}
            for round_no in range(args.rounds):
                for name in (a, b):
                    prefix = prefixes.get(table[name]["url"])
                    workers = nginx_workers(prefix) if prefix else ()
                    runs[name].append(wrk(table[name], args, round_no, workers))
                    time.sleep(args.settle)
            for name in (a, b):
                rps = sum(r["rps"] for r in runs[name]) / len(runs[name])
                measured.setdefault(name, []).extend(runs[name])
                cpu = [r["nginx_cpu_us"] for r in runs[name] if "nginx_cpu_us" in r]
                cpu_text = f"nginx {sum(cpu) / len(cpu):5.1f} us cpu/req" if cpu else "nginx not involved  "
                print(
                    f"  {name:<15} {rps:>10.0f} req/s  {cpu_text}  p50 {runs[name][-1]['p50_ms']:.2f} ms  "
                    f"p99 {runs[name][-1]['p99_ms']:.2f} ms  non-2xx {sum(r['non2xx'] for r in runs[name])}  "
                    f"errors {sum(r['errors'] for r in runs[name])}",
                    flush=True,
                )
            ra = sum(r["rps"] for r in runs[a]) / len(runs[a])
            rb = sum(r["rps"] for r in runs[b]) / len(runs[b])
            ratio = ra / rb if rb else 0.0
            verdict = "" if target is None else ("PASS" if ratio >= target else "FAIL")
            goal = "" if target is None else f"(target >= {target})"
            print(f"{title}: {ratio:.2f} {goal} {verdict}", flush=True)
            report.append(
                {
                    "pair": title,
                    "a": a,
                    "b": b,
                    "a_rps": round(ra, 1),
                    "b_rps": round(rb, 1),
                    "ratio": round(ratio, 3),
                    "target": target,
                    "pass": None if target is None else ratio >= target,
                }
            )
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.node()} {os.cpu_count()} cpus",
            "settings": vars(args),
            "pairs": report,
            "runs": measured,
        }
        out = ROOT / "var" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "gateway.json").write_text(json.dumps(result, indent=1))
        print(f"results in {out / 'gateway.json'}")
        return 0 if all(p["pass"] is not False for p in report) else 1
    finally:
        for second in (fallback, metered, unmetered):
            if second:
                second.stop()
        stack.stop()
        if args.keep:
            print(f"stack files (logs) kept in {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)  # the access log alone grows by ~0.5 GB a run


if __name__ == "__main__":
    sys.exit(main())
