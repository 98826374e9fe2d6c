#!/usr/bin/env python3
"""Runs benchmarks (issue 14).

    python bench/run.py runs [-- --rounds 40 --runs 40]

1. Sandbox overhead: a Python hello world run bare by the worker process
   (``subprocess.run(["/usr/bin/python3", "-u", "main.py"])`` in a work dir) next to the
   same program through ``execute("python", "run", ...)`` (bwrap, seccomp, rlimits, run
   uid, cgroups) and through ``execute(..., box_options={"cgroups": False})``;
   interleaved (bare, sandboxed, sandboxed without cgroups, bwrap alone, bare, ...)
   ``--rounds`` times. "bwrap alone" is the floor: the same program under plain
   ``bwrap`` with the sandbox's own mounts and namespaces (Box.command), no seccomp,
   rlimits, uid or cgroups, and none of execute()'s work (files, events, verdict).
   Reports medians and the ratios. ``--sandbox-only``: just this part.
2. End to end through the gateway: the whole stack on free ports (RATE_LIMITS=off),
   ``--runs`` Python hello worlds submitted at once (POST /newapi/runs, 8 client
   threads), each waited for (GET /newapi/runs/{id} until finished); runs per second
   with 1 runner, then with 2 runners.

Writes var/bench/runs.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402
from object_challenge.runs.execute import execute  # noqa: E402
from object_challenge.runs.sandbox import SANDBOX_ENV, Box, Limits  # noqa: E402

HELLO = "print('hello')\n"
FILES = [{"name": "main.py", "content": HELLO}]
LIMITS = {"wall_s": 5, "cpu_s": 2, "memory_mb": 256, "processes": 16, "output_kb": 64}


def bare(work):
    subprocess.run(["/usr/bin/python3", "-u", "main.py"], cwd=work, check=True, capture_output=True)


def sandboxed(cgroups):
    result = execute("python", "run", FILES, limits=LIMITS, box_options={"cgroups": cgroups})
    assert result["verdict"] == "ok", result


def bwrap_alone(cmd):
    subprocess.run(cmd, check=True, capture_output=True, env=dict(SANDBOX_ENV))


def overhead(rounds):
    work = tempfile.mkdtemp(prefix="oc-bench-bare-")
    Path(work, "main.py").write_text(HELLO)
    box = Box()
    box.work_dir = work
    floor = [*box.command(None, Limits()), "--", "/usr/bin/python3", "-u", "main.py"]
    kinds = {
        "bare": lambda: bare(work),
        "sandboxed": lambda: sandboxed(True),
        "no_cgroups": lambda: sandboxed(False),
        "bwrap_alone": lambda: bwrap_alone(floor),
    }
    for call in kinds.values():  # warm up (page cache, the first Box's subreaper)
        call()
    times = {name: [] for name in kinds}
    for _ in range(rounds):
        for name, call in kinds.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    out = {name: {"median_ms": round(statistics.median(t), 1), "min_ms": round(min(t), 1)} for name, t in times.items()}
    out["ratio_sandboxed"] = round(out["sandboxed"]["median_ms"] / out["bare"]["median_ms"], 2)
    out["ratio_no_cgroups"] = round(out["no_cgroups"]["median_ms"] / out["bare"]["median_ms"], 2)
    out["ratio_bwrap_alone"] = round(out["bwrap_alone"]["median_ms"] / out["bare"]["median_ms"], 2)
    return out


def end_to_end(stack, runs, clients=8):
    api = stack.url + "/newapi"
    headers = {"Authorization": "Token token_1"}
    body = {"language": "python", "files": FILES, "limits": LIMITS}
    ids, errors, lock = [], [], threading.Lock()

    def client(n):
        session = requests.Session()
        for _ in range(n):
            r = session.post(api + "/runs", json=body, headers=headers, timeout=30)
            if r.status_code != 202:
                errors.append(r.text)
                continue
            run_id = r.json()["run_id"]
            while True:
                got = session.get(f"{api}/runs/{run_id}", headers=headers, timeout=30).json()
                if got["state"] in ("finished", "cancelled"):
                    break
                time.sleep(0.02)
            with lock:
                ids.append((run_id, got["verdict"]))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(runs // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} runs refused: {errors[0]}")
    bad = [v for _, v in ids if v != "ok"]
    return {
        "runs": len(ids),
        "seconds": round(elapsed, 2),
        "runs_per_s": round(len(ids) / elapsed, 1),
        "not_ok": len(bad),
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--sandbox-only", action="store_true", help="only the sandbox overhead, no stack")
    args, _others = parser.parse_known_args(argv)  # `make bench BENCH_ARGS=...` passes every benchmark's options
    results = {"sandbox": overhead(args.rounds)}
    s = results["sandbox"]
    print(
        f"python hello, median of {args.rounds}: bare {s['bare']['median_ms']} ms, "
        f"sandboxed {s['sandboxed']['median_ms']} ms ({s['ratio_sandboxed']}x), "
        f"sandboxed without cgroups {s['no_cgroups']['median_ms']} ms ({s['ratio_no_cgroups']}x), "
        f"bwrap alone {s['bwrap_alone']['median_ms']} ms ({s['ratio_bwrap_alone']}x)",
        flush=True,
    )
    if args.sandbox_only:
        return _write(results)
    env = isolated_env(RATE_LIMITS="off", LOG_LEVEL="WARNING", RUNS_MAX_ACTIVE_PER_USER=1000)
    stack = Stack(env=env, var_dir=tempfile.mkdtemp(prefix="oc-bench-runs-"), mongo_file=False, quiet=True)
    stack.workers, stack.runners = 0, 1
    stack.start()
    try:
        end_to_end(stack, 8)  # warm up
        results["one_runner"] = end_to_end(stack, args.runs)
        print(f"through the gateway, 1 runner: {results['one_runner']}", flush=True)
        stack.runners = 1
        argv = [sys.executable, "manage.py", "worker", "--queue", stack.settings["RUNS_QUEUE"]]
        stack._spawn("runner-2", [*argv, "--modules", "run_program", "--worker-id", "bench-runner-2"])
        time.sleep(3)  # its start-up (app, sandbox self-test)
        results["two_runners"] = end_to_end(stack, args.runs)
        print(f"through the gateway, 2 runners: {results['two_runners']}", flush=True)
    finally:
        stack.stop()
    return _write(results)


def _write(results):
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
