#!/usr/bin/env python3
"""Campaign benchmarks (issue 15), every figure beside its baseline in one run.

    python bench/run.py campaigns [-- --ids 2000 --fill 10000]

Starts the whole stack on free ports (RATE_LIMITS=off, no default-queue worker, no stack
campaign worker; the player API stand-in with no rate limit: PLAYER_API_RPS=0 and
PLAYER_SOURCE_RPS=0; MongoDB is mongoeco's memory engine) and measures:

1. end to end: ids ingested per second for a pass of --ids ids (batches of 100, window 20),
   from POST /campaigns/{id}/passes to the pass being done, with 1 and then 2 worker processes
   (`manage.py worker --queue campaigns --modules players`, through the gateway), beside a plain
   loop in this process that calls the stand-in (100 ids per call) and `insert_many`s the same
   documents into the same collection of the same MongoDB; the loop runs before and after the
   workers (mongoeco's cost grows with the collection, so both see the same sizes) and the ratio
   is ours / the mean of the two loops;
2. ingest cost per batch (`ingest.ingest_batch`, 100 ids, second pass so the previous-pass read
   is included) with the records the collection holds after part 1, then after filling it to
   --fill records with insert_many.

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


def plain_loop(standin, db, start, end):
    """The baseline: the stand-in's answers inserted as they come, no queue, no upsert."""
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
                "_id": records.record_id("plain", 1, int(k)),
                "campaign": "plain",
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


def end_to_end(stack, base, n_workers, start, end, var):
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
            state = requests.get(f"{base}/campaigns/{campaign['campaign_id']}", headers=ADMIN, timeout=60).json()
            if state["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        assert state["state"] == "done", state
        return (end - start + 1) / elapsed, state
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)


def ingest_cost(db, samples, pass_no=2):
    """ms per ingest_batch of 100 ids (second pass of campaign `cost`: previous records read)."""
    times = []
    for s in range(samples):
        first = 1 + s * 100
        answers = {
            i: playerapi.player_record(i, 1) if playerapi.is_player(i, 1_200_000) else None
            for i in range(first, first + 100)
        }
        if pass_no == 2:
            ingest_batch(db, "cost", 1, {i: playerapi.player_record(i, 0) if v else None for i, v in answers.items()})
        began = time.monotonic()
        ingest_batch(db, "cost", pass_no, answers)
        times.append((time.monotonic() - began) * 1000)
    records.collection(db).delete_many({"campaign": "cost"})
    return statistics.median(times)


def fill(db, target, batch=200):
    collection = records.collection(db)
    have = collection.estimated_document_count()
    n = 0
    while have + n < target:
        docs = [
            {
                "_id": f"fill:1:{have + n + i}",
                "campaign": "fill",
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench campaigns")
    parser.add_argument("--ids", type=int, default=2000, help="ids per end-to-end run")
    parser.add_argument("--fill", type=int, default=10_000, help="records stored for the second cost figure")
    parser.add_argument("--samples", type=int, default=5, help="batches timed per cost figure")
    parser.add_argument("--only", default="end_to_end,cost", help="parts to run")
    args, _others = parser.parse_known_args(argv)

    env = isolated_env(
        RATE_LIMITS="off", LOG_LEVEL="WARNING", PLAYER_API_RPS=0, PLAYER_SOURCE_RPS=0, CAMPAIGN_WORKERS=0, RUNNERS=0
    )
    var = Path(tempfile.mkdtemp(prefix="oc-bench-campaigns-"))
    stack = Stack(env=env, var_dir=var, mongo_file=False, quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    results = {"mongo": "mongoeco memory", "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    parts = set(args.only.split(","))
    client = MongoClient(stack.env["MONGO_URI"], socketTimeoutMS=600_000)
    db = client.get_default_database()
    try:
        base = stack.url + "/newapi"
        standin = "http://" + stack.settings["PLAYER_API_ADDR"]
        n = args.ids
        if "end_to_end" in parts:
            loop1 = plain_loop(standin, db, 1, n)
            one, _ = end_to_end(stack, base, 1, n + 1, 2 * n, var)
            two, _ = end_to_end(stack, base, 2, 2 * n + 1, 3 * n, var)
            loop2 = plain_loop(standin, db, 3 * n + 1, 4 * n)
            loop = (loop1 + loop2) / 2
            results["end_to_end"] = {
                "ids": n,
                "plain_loop_ids_per_s": [round(loop1, 1), round(loop2, 1)],
                "workers_1_ids_per_s": round(one, 1),
                "workers_2_ids_per_s": round(two, 1),
                "ratio_1": round(one / loop, 3),
                "ratio_2": round(two / loop, 3),
            }
            print(
                f"end to end, {n} ids each: 1 worker {one:.1f} ids/s, 2 workers {two:.1f} ids/s | plain loop "
                f"{loop1:.1f} then {loop2:.1f} ids/s | ratio x{one / loop:.2f} (1), x{two / loop:.2f} (2)",
                flush=True,
            )
        if "cost" in parts:
            stored = records.collection(db).estimated_document_count()
            small = ingest_cost(db, args.samples)
            big_count = fill(db, args.fill)
            big = ingest_cost(db, args.samples)
            results["ingest_cost"] = {
                "records_stored": [stored, big_count],
                "ms_per_batch_median": [round(small, 1), round(big, 1)],
                "growth": round(big / small, 2),
            }
            print(
                f"ingest_batch (100 ids, pass 2): {small:.0f} ms with {stored} records stored, "
                f"{big:.0f} ms with {big_count} (x{big / small:.2f})",
                flush=True,
            )
    finally:
        client.close()
        stack.stop()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "campaigns.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
