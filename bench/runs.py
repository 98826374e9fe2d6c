#!/usr/bin/env python3
"""Runs benchmarks (issue 14).

    python bench/run.py runs [-- --rounds 40 --runs 40]

1. Sandbox overhead, interleaved ``--rounds`` times (medians, ratios):

   - "bare": the goal's baseline, ``bare()``: the same Python hello world run by
     the worker as it would run it without the sandbox: the request checked, a fresh
     work dir written by ``write_files``, the same rlimits set before the program
     starts (``prlimit``, then exec), the cleared environment, a new session, output
     read by the sandbox's own pump, the work dir discarded the same way. The only
     difference from "sandboxed" is the sandbox.
   - "sandboxed": ``execute("python", "run", ...)`` (bwrap, seccomp, rlimits, run uid,
     cgroups, the run uid's network namespace); "no cgroups": the same with
     ``box_options={"cgroups": False}``.
   - "program alone": ``subprocess.run(["/usr/bin/python3", "-u", "main.py"])`` in a
     ready work dir, nothing else (the figure the ratios used before 2026-12-06).
   - "bwrap alone": the program under plain ``bwrap`` with the sandbox's mounts and
     bwrap's own namespaces, the network's included (``Box.command``), no seccomp,
     rlimits, uid, cgroups, and none of execute()'s work: the floor of bwrap as bwrap.

   ``--sandbox-only``: just this part.
2. End to end through the gateway: the whole stack on free ports (RATE_LIMITS=off),
   ``--runs`` Python hello worlds submitted at once (POST /newapi/runs, 8 client
   threads), each waited for (GET /newapi/runs/{id} until finished); runs per second
   with 1 runner, then with 2 runners.

Writes var/bench/runs.json.
"""

import argparse
import json
import os
import resource
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
from object_challenge.runs import languages  # noqa: E402
from object_challenge.runs.execute import execute, resolve_limits  # noqa: E402
from object_challenge.runs.files import validate_args, validate_files, write_files  # noqa: E402
from object_challenge.runs.sandbox import SANDBOX_ENV, Box, Limits, _memfd, _pump, _rlimits, discard_dir  # noqa: E402

HELLO = "print('hello')\n"
FILES = [{"name": "main.py", "content": HELLO}]
LIMITS = {"wall_s": 5, "cpu_s": 2, "memory_mb": 256, "processes": 16, "output_kb": 64}


def program_alone(work):
    subprocess.run(["/usr/bin/python3", "-u", "main.py"], cwd=work, check=True, capture_output=True)


def _prlimit_options(limits):
    names = {
        resource.RLIMIT_CORE: "core",
        resource.RLIMIT_CPU: "cpu",
        resource.RLIMIT_AS: "as",
        resource.RLIMIT_NPROC: "nproc",
        resource.RLIMIT_FSIZE: "fsize",
        resource.RLIMIT_NOFILE: "nofile",
    }
    # the values the sandbox sets on its pid 1 (as for a run uid: no /proc count)
    return [f"--{names[which]}={soft}:{hard}" for which, (soft, hard) in _rlimits(limits, uid=-1)]


def bare(files=FILES, limits=LIMITS):
    """The same program run by the worker as it would run it without the sandbox.

    Everything execute() does except the sandbox: the request checked the same way, a
    fresh work directory in the same place written by the same write_files, the same
    rlimits set before the program starts (through util-linux ``prlimit``, as piston
    does: setrlimit then exec, keeping subprocess's vfork path; a ``preexec_fn`` would
    fork the whole process), the same cleared environment, stdin from a memfd, a new
    session, output read by the same pump (events every 100 ms, output cap, wall
    clock), the work directory discarded after as a Box discards its own.
    """
    lang = languages.get("python")
    files = validate_files(files)
    args = validate_args(None)
    limits = resolve_limits(limits)
    names = [n for n, _ in files]
    main = lang.main_file(names, None)
    base = os.path.join(tempfile.gettempdir(), "oc-runs")
    os.makedirs(base, mode=0o711, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bare-", dir=base)
    events = []
    try:
        write_files(work, files)
        argv = ["/usr/bin/prlimit", *_prlimit_options(limits), "--", *lang.run_argv(names, main, args)]
        stdin_fd = _memfd("oc-stdin", b"")
        try:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv,
                cwd=work,
                stdin=stdin_fd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**SANDBOX_ENV, "HOME": work},
                close_fds=True,
                start_new_session=True,
            )
        finally:
            os.close(stdin_fd)
        outcome = _pump(proc, limits, started, lambda stream, data: events.append((stream, data)), None)
    finally:
        discard_dir(work)  # as a Box does
    out = "".join(data for stream, data in events if stream == "stdout")
    assert outcome.exit_code == 0 and out == "hello\n", (outcome, events)


def sandboxed(cgroups):
    result = execute("python", "run", FILES, limits=LIMITS, box_options={"cgroups": cgroups})
    assert result["verdict"] == "ok", result


def bwrap_alone(cmd):
    subprocess.run(cmd, check=True, capture_output=True, env=dict(SANDBOX_ENV))


def overhead(rounds):
    load = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="oc-bench-bare-")
    Path(work, "main.py").write_text(HELLO)
    box = Box()
    box.work_dir = work
    floor = [*box.command(None, Limits()), "--", "/usr/bin/python3", "-u", "main.py"]
    kinds = {
        "bare": bare,
        "sandboxed": lambda: sandboxed(True),
        "no_cgroups": lambda: sandboxed(False),
        "program_alone": lambda: program_alone(work),
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
    # the goal's ratio: the sandboxed run against the same run by the worker without it
    for name in ("sandboxed", "no_cgroups"):
        out[f"ratio_{name}"] = round(out[name]["median_ms"] / out["bare"]["median_ms"], 2)
    # against the program alone (no work dir, limits, pump): the worker's and bwrap's shares
    for name in ("bare", "sandboxed", "bwrap_alone"):
        out[f"ratio_{name}_to_program"] = round(out[name]["median_ms"] / out["program_alone"]["median_ms"], 2)
    out["load_before"] = load
    return out


def end_to_end(stack, runs, clients=8):
    load = os.getloadavg()[0]
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
        "load_before": load,
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
        f"python hello, median of {args.rounds} (load {s['load_before']:.1f}): "
        f"bare (worker, no sandbox) {s['bare']['median_ms']} ms, "
        f"sandboxed {s['sandboxed']['median_ms']} ms ({s['ratio_sandboxed']}x), "
        f"sandboxed without cgroups {s['no_cgroups']['median_ms']} ms ({s['ratio_no_cgroups']}x); "
        f"to the program alone ({s['program_alone']['median_ms']} ms): bare {s['ratio_bare_to_program']}x, "
        f"sandboxed {s['ratio_sandboxed_to_program']}x, "
        f"bwrap alone {s['bwrap_alone']['median_ms']} ms ({s['ratio_bwrap_alone_to_program']}x)",
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
