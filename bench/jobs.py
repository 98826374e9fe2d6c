#!/usr/bin/env python3
"""Job-queue benchmarks (issue 5).

    python bench/run.py jobs [-- --duration 10 --workers 8 --sizes 1000,100000]

Starts the whole stack on free ports (RATE_LIMITS=off, no stack worker; MongoDB
is mongoeco on SQLite, as `make run`), then measures:

1. round trips/s through the gateway: N threads, each looping enqueue (POST /queue)
   -> poll (GET /queue/poll?worker_id=) -> complete (PATCH /jobs/{id}/completed),
   next to the same three steps as a plain Redis loop from Python
   (LPUSH job JSON / RPOP / SET result), N threads on the same redis-server;
2. enqueue cost with 1k and 100k jobs already queued: two queues, one with a 1k and
   one with a 100k backlog, enqueued into alternately (A B A B ...), timing POST /queue
   through the gateway and the enqueue script alone (EVALSHA). The backlogs are written
   in bulk with the Redis records enqueue writes (hash + list entry); MongoDB documents
   are written for the first --doc-limit backlog jobs only (all in the 1k queue), so
   both queues' enqueues insert into the same collection and only the queue length
   differs: mongoeco's insert cost grows with its collection (about linearly, see
   docs/benchmarks.md) and 100k documents would take it hours. With --mongo-uri (a real
   MongoDB) every backlog job gets its document.

Writes var/bench/jobs.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis as redis_lib
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.core.config import settings_from_env  # noqa: E402
from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402
from object_challenge.jobs import keys  # noqa: E402
from object_challenge.jobs.queue import JobQueue  # noqa: E402

JOB = {"job_title": "bench", "tasks": [{"module": "echo", "data": {"n": 1}}]}


def stack_env(mongo):
    return isolated_env(RATE_LIMITS="off", LOG_LEVEL="WARNING")


def run_threads(n, duration, body):
    """Run ``body(i, stop)`` in n threads for ``duration`` s; returns the summed counts."""
    stop = threading.Event()
    counts = [0] * n
    errors = []

    def loop(i):
        try:
            counts[i] = body(i, stop)
        except Exception as exc:  # reported, never hidden
            errors.append(repr(exc))
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"benchmark thread failed: {errors[0]}")
    return sum(counts), elapsed


def gateway_round_trips(base, queue, workers, duration):
    def body(i, stop):
        s = requests.Session()
        worker = {"Authorization": "Token token_worker"}
        user = {"Authorization": "Token token_1"}
        done = 0
        while not stop.is_set():
            r = s.post(f"{base}/queue", params={"queue": queue}, json=JOB, headers=user, timeout=30)
            assert r.status_code == 201, r.text
            r = s.get(
                f"{base}/queue/poll", params={"queue": queue, "worker_id": f"bench-{i}"}, headers=worker, timeout=30
            )
            if r.status_code == 404:  # another thread took "our" job first; the next loop evens out
                continue
            assert r.status_code == 200, r.text
            job_id = r.json()["job_id"]
            r = s.patch(
                f"{base}/jobs/{job_id}/completed",
                params={"worker_id": f"bench-{i}"},
                json={"failed": False, "info": {"bench": True}},
                headers=worker,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            done += 1
        return done

    return run_threads(workers, duration, body)


def redis_round_trips(url, workers, duration):
    client = redis_lib.Redis.from_url(url, decode_responses=True)
    key = f"bench:plain:{uuid.uuid4().hex[:6]}"

    def body(i, stop):
        done = 0
        while not stop.is_set():
            job_id = str(uuid.uuid4())
            client.lpush(key, json.dumps({"job_id": job_id, **JOB}))
            raw = client.rpop(key)
            if raw is None:
                continue
            client.set(f"{key}:result:{json.loads(raw)['job_id']}", '{"failed": false}', ex=60)
            done += 1
        return done

    try:
        return run_threads(workers, duration, body)
    finally:
        for k in client.scan_iter(f"{key}*", count=1000):
            client.delete(k)


def fill_backlog(settings, queue, count, doc_limit, chunk=5000):
    """``count`` queued jobs in Redis (hash + list entry, as enqueue.lua writes them);
    the first ``doc_limit`` of them also get their MongoDB document. Returns docs written."""
    from pymongo import MongoClient

    mongo = MongoClient(settings["MONGO_URI"])
    coll = mongo[settings["MONGO_JOB_DB"]][settings["MONGO_JOB_COLL_QUEUED"]]
    r = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    docs = 0
    for start in range(0, count, chunk):
        ids = [str(uuid.uuid4()) for _ in range(min(chunk, count - start))]
        with_docs = ids[: max(0, doc_limit - docs)]
        for i in range(0, len(with_docs), 200):
            coll.insert_many(
                [
                    {
                        "_id": j,
                        "job_id": j,
                        **JOB,
                        "added": now,
                        "queue": queue,
                        "state": "queued",
                        "attempt": 0,
                        "max_attempts": 3,
                        "worker_id": None,
                        "lease_expires_at": None,
                        "owner_id": 1,
                        "owner_name": "a",
                        "result": None,
                        "info": None,
                        "finished_at": None,
                        "history": [{"event": "enqueued", "at": now}],
                    }
                    for j in with_docs[i : i + 200]
                ]
            )
        docs += len(with_docs)
        pipe = r.pipeline(transaction=False)
        for i in ids:
            pipe.hset(
                keys.job(i),
                mapping={
                    "queue": queue,
                    "state": "queued",
                    "attempt": 0,
                    "max_attempts": 3,
                    "worker": "",
                    "lease_until": "",
                },
            )
        pipe.rpush(keys.queue(queue), *ids)
        pipe.execute()
    mongo.close()
    return docs


def percentiles(samples):
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1] * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
    }


def enqueue_cost(base, settings, queues, samples):
    """POST /queue and enqueue.lua latency per queue, the queues sampled alternately
    (A B A B ...) so that load changes on the machine hit every size alike."""
    session = requests.Session()
    user = {"Authorization": "Token token_1"}
    client = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    q = JobQueue(client, 60, 3, 30)
    http = {name: [] for name in queues}
    script = {name: [] for name in queues}
    for _ in range(samples):
        for name in queues:
            t0 = time.perf_counter()
            r = session.post(f"{base}/queue", params={"queue": name}, json=JOB, headers=user, timeout=30)
            http[name].append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
            t0 = time.perf_counter()
            q.enqueue(str(uuid.uuid4()), name)
            script[name].append(time.perf_counter() - t0)
    return {
        name: {
            "http": percentiles(http[name]),
            "script": percentiles(script[name]),
            "queued_after": client.llen(keys.queue(name)),
        }
        for name in queues
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench jobs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sizes", default="1000,100000", help="backlog sizes for the enqueue cost")
    parser.add_argument("--samples", type=int, default=300, help="enqueues timed per size")
    parser.add_argument("--mongo", choices=("sqlite", "memory"), default="sqlite", help="mongoeco engine")
    parser.add_argument("--mongo-uri", default=None, help="a real MongoDB instead of mongoeco")
    parser.add_argument(
        "--doc-limit",
        type=int,
        default=1000,
        help="backlog jobs that get a MongoDB document (mongoeco); all with --mongo-uri",
    )
    args = parser.parse_args(argv)

    env = stack_env(args.mongo)
    if args.mongo_uri:
        env["MONGO_URI"] = args.mongo_uri
        args.doc_limit = 10**9
    var = Path(tempfile.mkdtemp(prefix="oc-bench-jobs-"))
    stack = Stack(env=env, var_dir=var, mongo_file=args.mongo == "sqlite", quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    results = {
        "workers": args.workers,
        "duration_s": args.duration,
        "mongo": "external" if args.mongo_uri else f"mongoeco {args.mongo}",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        base = stack.url + "/newapi"
        settings = settings_from_env(stack.env)
        # warm up connections and script caches
        gateway_round_trips(base, "bench-warm", args.workers, 1.0)

        n, elapsed = gateway_round_trips(base, "bench-rt", args.workers, args.duration)
        results["gateway_round_trips_per_s"] = round(n / elapsed, 1)
        print(f"gateway enqueue->poll->complete, {args.workers} workers: {n / elapsed:8.1f} round trips/s", flush=True)
        n, elapsed = redis_round_trips(settings["REDIS_URL"], args.workers, args.duration)
        results["plain_redis_round_trips_per_s"] = round(n / elapsed, 1)
        print(f"plain Redis LPUSH->RPOP->SET,   {args.workers} threads: {n / elapsed:8.1f} round trips/s", flush=True)
        results["ratio_gateway_to_plain_redis"] = round(
            results["gateway_round_trips_per_s"] / results["plain_redis_round_trips_per_s"], 4
        )
        print(
            f"ratio gateway / plain Redis: {results['ratio_gateway_to_plain_redis']:.4f} "
            f"(1 : {1 / results['ratio_gateway_to_plain_redis']:.0f})",
            flush=True,
        )

        results["enqueue_cost"] = {}
        sizes = [int(x) for x in args.sizes.split(",")]
        queues, docs_left = {}, args.doc_limit
        for size in sizes:
            queue = f"bench-backlog-{size}"
            t0 = time.perf_counter()
            docs = fill_backlog(settings, queue, size, docs_left)
            docs_left -= docs
            queues[queue] = (size, docs)
            print(f"backlog of {size} ({docs} with documents) written in {time.perf_counter() - t0:.1f}s", flush=True)
        costs = enqueue_cost(base, settings, list(queues), args.samples)
        for queue, (size, docs) in queues.items():
            cost = dict(costs[queue], backlog_documents=docs)
            results["enqueue_cost"][str(size)] = cost
            print(
                f"enqueue with {size:>6} queued: POST /queue median {cost['http']['median_ms']:.2f} ms "
                f"p95 {cost['http']['p95_ms']:.2f} ms | enqueue.lua median {cost['script']['median_ms']:.3f} ms "
                f"p95 {cost['script']['p95_ms']:.3f} ms",
                flush=True,
            )
        if len(sizes) >= 2:
            small, big = results["enqueue_cost"][str(sizes[0])], results["enqueue_cost"][str(sizes[-1])]
            results["enqueue_growth_http"] = round(big["http"]["median_ms"] / small["http"]["median_ms"], 3)
            results["enqueue_growth_script"] = round(big["script"]["median_ms"] / small["script"]["median_ms"], 3)
            print(
                f"growth {sizes[0]} -> {sizes[-1]}: POST /queue x{results['enqueue_growth_http']}, "
                f"enqueue.lua x{results['enqueue_growth_script']}",
                flush=True,
            )
    finally:
        stack.stop()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {out / 'jobs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
