#!/usr/bin/env python3
"""Campaign benchmarks (issue 15), every figure beside its baseline in one run.

    python bench/run.py campaigns [-- --ids 2000 --rounds 3 --fill 10000,100000 --mongo-uri URI]

Starts the whole stack on free ports (RATE_LIMITS=off, no default-queue worker, no stack
campaign worker; the player API stand-in with no rate limit: PLAYER_API_RPS=0 and
PLAYER_SOURCE_RPS=0; MongoDB is mongoeco's memory engine, or the server of --mongo-uri /
MONGO_URI, which must be a URI with a database name) and measures:

1. end to end: ids ingested per second for a pass of --ids ids (batches of 100, window 20),
   from the pass's start to its last batch ingested (the pass's own started_at / finished_at;
   progress is read every --poll s to see it end), with
   1 and then 2 worker processes (`manage.py worker --queue campaigns --modules players`, through
   the gateway), beside a plain loop in this process that calls the stand-in (100 ids per call)
   and `insert_many`s the same documents into the same collection of the same MongoDB. One round
   is loop, 1 worker, 2 workers, loop (each on ids never asked before); a round's ratio is ours /
   the mean of its two loops, so both sides see the same machine load and collection size.
   --rounds rounds after a warm-up round of --warmup ids that is not counted (the services'
   first requests: imports, connections, lazy index creation); the median ratio is the figure
   (other sessions' tests load the machine: one round decides little);
2. ingest cost per batch (`ingest.ingest_batch`, 100 ids, second pass so the previous-pass read
   is included) with the records the collection holds after part 1, then after filling it to
   each size of --fill with insert_many (mongoeco's memory engine holds 100,000 in a few minutes;
   1,000,000 needs a real MongoDB: --mongo-uri).

Writes var/bench/campaigns.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.campaigns import playerapi, records  # noqa: E402
from object_challenge.campaigns.ingest import ingest_batch  # noqa: E402
from object_challenge.campaigns.source import battles_of  # noqa: E402
from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402

ADMIN = {"Authorization": "Token token_admin"}


RUN = uuid.uuid4().hex[:6]  # names of this run's records: a real MongoDB keeps earlier runs'


def plain_loop(standin, db, start, end):
    """The baseline: the stand-in's answers inserted as they come, no queue, no duplicate check."""
    session = requests.Session()
    collection = records.collection(db)
    began = time.monotonic()
    for first in range(start, end + 1, 100):
        ids = range(first, min(end, first + 99) + 1)
        answer = session.get(
            standin + "/account/info/",
            params={"application_id": "bench", "account_id": ",".join(map(str, ids))},
            timeout=30,
        ).json()
        now = datetime.now(UTC)
        docs = [
            {
                "_id": records.record_id(f"plain-{RUN}", 1, int(k)),
                "campaign": f"plain-{RUN}",
                "pass": 1,
                "player_id": int(k),
                "battles": battles_of(v),
                "diff_battles": None,
                "record": v,
                "ingested_at": now,
            }
            for k, v in answer["data"].items()
            if v is not None
        ]
        if docs:
            collection.insert_many(docs, ordered=False)
    return (end - start + 1) / (time.monotonic() - began)


def end_to_end(stack, base, n_workers, start, end, var, poll=0.5):
    workers = []
    env = {**stack.env, "PLAYER_SOURCE_RPS": "0"}
    for i in range(n_workers):
        argv = [sys.executable, "manage.py", "worker", "--queue", "campaigns", "--modules", "players"]
        log = open(var / f"bench-worker-{n_workers}-{i}.log", "wb")
        workers.append(
            subprocess.Popen(
                [*argv, "--worker-id", f"bench-{n_workers}-{i}", "--poll-interval", "0.02"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        time.sleep(3)  # the workers start (imports, first poll)
        body = {"name": f"bench-{uuid.uuid4().hex[:6]}", "range": {"start": start, "end": end}, "window": 20}
        campaign = requests.post(base + "/campaigns", json=body, headers=ADMIN, timeout=60).json()
        began = time.monotonic()
        requests.post(f"{base}/campaigns/{campaign['campaign_id']}/passes", headers=ADMIN, timeout=60)
        while True:
            time.sleep(poll)
            state = requests.get(f"{base}/campaigns/{campaign['campaign_id']}", headers=ADMIN, timeout=60).json()
            if state["state"] in ("done", "failed"):
                break
        assert state["state"] == "done", state
        # the pass's own clock (started_at: the pass is created; finished_at: its last batch is
        # ingested), so the progress reads' interval does not round the figure
        started, finished = (datetime.fromisoformat(state[k]) for k in ("started_at", "finished_at"))
        elapsed = (finished - started).total_seconds()
        assert 0 < elapsed <= time.monotonic() - began, (elapsed, state)
        return (end - start + 1) / elapsed, state
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)


def ingest_cost(db, samples, campaign, pass_no=2):
    """ms per ingest_batch of 100 ids (second pass of ``campaign``: previous records read)."""
    times = []
    for s in range(samples):
        first = 1 + s * 100
        answers = {
            i: playerapi.player_record(i, 1) if playerapi.is_player(i, 1_200_000) else None
            for i in range(first, first + 100)
        }
        if pass_no == 2:
            ingest_batch(db, campaign, 1, {i: playerapi.player_record(i, 0) if v else None for i, v in answers.items()})
        began = time.monotonic()
        result = ingest_batch(db, campaign, pass_no, answers)
        times.append((time.monotonic() - began) * 1000)
        assert result.inserted == result.found > 0, result
    return statistics.median(times)


def fill(db, target, batch=1000):
    collection = records.collection(db)
    have = collection.estimated_document_count()
    n = 0
    while have + n < target:
        docs = [
            {
                "_id": f"fill-{RUN}:1:{have + n + i}",
                "campaign": f"fill-{RUN}",
                "pass": 1,
                "player_id": have + n + i,
                "battles": 1,
                "record": playerapi.player_record(have + n + i + 1, 0),
            }
            for i in range(min(batch, target - have - n))
        ]
        collection.insert_many(docs, ordered=False)
        n += len(docs)
    return collection.estimated_document_count()


def cpu_seconds(pid):
    """User + system CPU of process ``pid`` so far (None when it is not a local process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mongo_cpu(stack):
    """A function measuring the local MongoDB stand-in's CPU seconds (None with --mongo-uri)."""
    pid = dict(stack.processes)["mongo"].pid if "mongo" in dict(stack.processes) else None
    return lambda: cpu_seconds(pid)


def one_round(stack, base, standin, db, var, n, first, poll):
    """loop, 1 worker, 2 workers, loop on four fresh ranges of ``n`` ids from ``first``.

    Beside each rate, the MongoDB stand-in's CPU per 1,000 ids over the same span (the pass's
    whole run for a worker side: its start, the progress reads, the scheduler, the job records):
    the work each side asks of the one process both wait on, which the machine's load moves less
    than a rate."""
    load = [os.getloadavg()[0]]
    cpu = mongo_cpu(stack)
    spent = {}

    def timed(name, run, *args):
        before = cpu()
        rate = run(*args)
        after = cpu()
        if before is not None and after is not None:
            spent[name] = round((after - before) * 1000 / n * 1000, 1)  # ms per 1,000 ids
        return rate

    loop1 = timed("loop1", plain_loop, standin, db, first, first + n - 1)
    one, _ = timed("one", end_to_end, stack, base, 1, first + n, first + 2 * n - 1, var, poll)
    two, _ = timed("two", end_to_end, stack, base, 2, first + 2 * n, first + 3 * n - 1, var, poll)
    loop2 = timed("loop2", plain_loop, standin, db, first + 3 * n, first + 4 * n - 1)
    load.append(os.getloadavg()[0])
    loop = (loop1 + loop2) / 2
    row = {
        "plain_loop_ids_per_s": [round(loop1, 1), round(loop2, 1)],
        "workers_1_ids_per_s": round(one, 1),
        "workers_2_ids_per_s": round(two, 1),
        "ratio_1": round(one / loop, 3),
        "ratio_2": round(two / loop, 3),
        "load_average_1min": [round(x, 2) for x in load],
    }
    if len(spent) == 4:
        row["mongo_cpu_ms_per_1000_ids"] = {
            "plain_loop": [spent["loop1"], spent["loop2"]],
            "workers_1": spent["one"],
            "workers_2": spent["two"],
        }
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench campaigns")
    parser.add_argument("--ids", type=int, default=2000, help="ids per end-to-end run")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end rounds (loop, 1 worker, 2 workers, loop)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between two progress reads of a pass")
    parser.add_argument(
        "--warmup", type=int, default=500, help="ids of a first round left out of the figures (0: none)"
    )
    parser.add_argument("--fill", default="10000", help="record counts (comma-separated) for the cost figures")
    parser.add_argument("--samples", type=int, default=5, help="batches timed per cost figure")
    parser.add_argument("--only", default="end_to_end,cost", help="parts to run")
    parser.add_argument(
        "--mongo-uri", default=os.environ.get("MONGO_URI"), help="a real MongoDB (with a database name)"
    )
    args, _others = parser.parse_known_args(argv)

    overrides = {}
    if args.mongo_uri:
        overrides["MONGO_URI"] = args.mongo_uri
    env = isolated_env(
        RATE_LIMITS="off",
        LOG_LEVEL="WARNING",
        PLAYER_API_RPS=0,
        PLAYER_SOURCE_RPS=0,
        CAMPAIGN_WORKERS=0,
        RUNNERS=0,
        **overrides,
    )
    var = Path(tempfile.mkdtemp(prefix="oc-bench-campaigns-"))
    stack = Stack(env=env, var_dir=var, mongo_file=False, quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    results = {
        "mongo": "MONGO_URI" if args.mongo_uri else "mongoeco memory",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    parts = set(args.only.split(","))
    client = MongoClient(stack.env.get("MONGO_URI") or args.mongo_uri, socketTimeoutMS=600_000)
    db = client.get_default_database()
    try:
        base = stack.url + "/newapi"
        standin = "http://" + stack.settings["PLAYER_API_ADDR"]
        n = args.ids
        if "end_to_end" in parts:
            first = 1  # every round on ids never asked before (the population holds 1,200,000)
            if args.warmup:
                # the services' first requests (imports, connections, lazy index creation) and the
                # first worker start would otherwise land in round 1, on one side more than the other
                row = one_round(stack, base, standin, db, var, args.warmup, first, args.poll)
                first += 4 * args.warmup
                print(
                    f"warm-up round, {args.warmup} ids each (not counted): ratio x{row['ratio_1']:.2f} (1), "
                    f"x{row['ratio_2']:.2f} (2)",
                    flush=True,
                )
            rounds = []
            for r in range(args.rounds):
                rounds.append(one_round(stack, base, standin, db, var, n, first, args.poll))
                first += 4 * n
                row = rounds[-1]
                print(
                    f"round {r + 1}, {n} ids each: 1 worker {row['workers_1_ids_per_s']} ids/s, 2 workers "
                    f"{row['workers_2_ids_per_s']} ids/s | plain loop {row['plain_loop_ids_per_s'][0]} then "
                    f"{row['plain_loop_ids_per_s'][1]} ids/s | ratio x{row['ratio_1']:.2f} (1), "
                    f"x{row['ratio_2']:.2f} (2) | load {row['load_average_1min'][0]}-{row['load_average_1min'][1]}"
                    + (
                        " | mongo CPU ms/1000 ids: loop {plain_loop[0]}, {plain_loop[1]}, 1 worker {workers_1},"
                        " 2 workers {workers_2}".format(**row["mongo_cpu_ms_per_1000_ids"])
                        if "mongo_cpu_ms_per_1000_ids" in row
                        else ""
                    ),
                    flush=True,
                )
            median_1 = statistics.median(r["ratio_1"] for r in rounds)
            median_2 = statistics.median(r["ratio_2"] for r in rounds)
            results["end_to_end"] = {
                "ids": n,
                "warmup_ids": args.warmup,
                "poll_s": args.poll,
                "rounds": rounds,
                "median_ratio_1": median_1,
                "median_ratio_2": median_2,
            }
            print(f"median ratio, {len(rounds)} rounds: x{median_1:.2f} (1 worker), x{median_2:.2f} (2)", flush=True)
            costs = [r["mongo_cpu_ms_per_1000_ids"] for r in rounds if "mongo_cpu_ms_per_1000_ids" in r]
            if costs:
                loop_cost = statistics.median(x for c in costs for x in c["plain_loop"])
                cost_1 = statistics.median(c["workers_1"] for c in costs)
                cost_2 = statistics.median(c["workers_2"] for c in costs)
                results["end_to_end"]["median_mongo_cpu_ms_per_1000_ids"] = {
                    "plain_loop": loop_cost,
                    "workers_1": cost_1,
                    "workers_2": cost_2,
                }
                print(
                    f"median MongoDB stand-in CPU per 1000 ids: plain loop {loop_cost:.0f} ms, 1 worker "
                    f"{cost_1:.0f} ms (x{cost_1 / loop_cost:.2f}), "
                    f"2 workers {cost_2:.0f} ms (x{cost_2 / loop_cost:.2f})",
                    flush=True,
                )
        if "cost" in parts:
            costs = []
            stored = records.collection(db).estimated_document_count()
            costs.append((stored, ingest_cost(db, args.samples, f"cost-{uuid.uuid4().hex[:6]}")))
            for target in (int(x) for x in args.fill.split(",") if x):
                began = time.monotonic()
                stored = fill(db, target)
                filled_s = time.monotonic() - began
                costs.append((stored, ingest_cost(db, args.samples, f"cost-{uuid.uuid4().hex[:6]}")))
                print(f"  filled to {stored} records in {filled_s:.0f} s", flush=True)
            results["ingest_cost"] = [{"records_stored": c, "ms_per_batch_median": round(ms, 1)} for c, ms in costs]
            print(
                "ingest_batch (100 ids, pass 2), median ms: "
                + ", ".join(f"{ms:.0f} ms with {c} records stored" for c, ms in costs)
                + f" (x{costs[-1][1] / costs[0][1]:.2f} first to last)",
                flush=True,
            )
    finally:
        client.close()
        stack.stop()
    results["load_average_at_end"] = os.getloadavg()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "campaigns.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
