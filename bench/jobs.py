#!/usr/bin/env python3
"""Job-queue benchmarks (issues 5 and 13), every figure beside its baseline in one run.

    python bench/run.py jobs [-- --duration 10 --jobs 2000 --rounds 3 --fill-seconds 120]

Starts the whole stack on free ports (RATE_LIMITS=off, no stack worker; MongoDB is
mongoeco on SQLite, as `make run`) and measures, through the service's own routes
(nothing is written into Redis or MongoDB by hand):

1. workers: the built-in worker (`manage.py worker`, through the gateway) vs RQ's
   `SimpleWorker` on the same redis-server, the same trivial task (ours: `echo`; RQ:
   `json.dumps`), 1 and 2 worker processes started first and idle, then --jobs jobs
   enqueued at once (ours: bulk POST /queue; RQ: `Queue.enqueue_many`); jobs/s is
   jobs / time until the last one finished; --rounds rounds of RQ 1, ours 1, RQ 2,
   ours 2, medians reported. Each of our runs starts with the recorder caught up (so
   it does not pay for the previous run's records), and the time the recorder then
   needed to write the run's records to MongoDB is reported beside it;
2. round trips: N client threads each looping enqueue (POST /queue) -> poll (GET
   /queue/poll) -> complete (PATCH /jobs/{id}/completed) through the gateway, N = 1
   and 8, beside the same three steps as a plain Redis loop (LPUSH / RPOP / SET);
3. bulk enqueue: one POST /queue {"jobs": [1,000 jobs]} vs 1,000 single POST /queue;
4. poll with `modules` that skips 100 jobs it cannot take vs a plain poll (GET
   /queue/poll latency, alternated);
5. records: enqueue->poll->complete latency and the recorder's cost per job with 1k
   jobs recorded in MongoDB vs as many as the recorder writes in --fill-seconds
   (mongoeco cannot take 100k in a benchmark's time; with --mongo-uri, a real
   MongoDB, --records jobs are recorded).

Writes var/bench/jobs.json.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from json import dumps
from pathlib import Path

import redis as redis_lib
import requests
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from object_challenge.core.config import settings_from_env  # noqa: E402
from object_challenge.core.counting import count as count_documents  # noqa: E402
from object_challenge.dev.devstack import Stack, isolated_env  # noqa: E402
from object_challenge.jobs import keys  # noqa: E402
from object_challenge.jobs.store import JobStore  # noqa: E402

JOB = {"job_title": "bench", "tasks": [{"module": "echo", "data": {"n": 1}}]}
USER = {"Authorization": "Token token_1"}
WORKER = {"Authorization": "Token token_worker"}
WORKER_CMD = (sys.executable, "manage.py", "worker")
POLL = ("--poll-interval", "0.02")
RQ_WORKER = """
import sys
from redis import Redis
from rq import Queue, SimpleWorker
connection = Redis.from_url(sys.argv[1])
SimpleWorker([Queue(sys.argv[2], connection=connection)], connection=connection).work(
    burst=False, logging_level="WARNING", with_scheduler=False)
"""


def run_threads(n, duration, body):
    """Run ``body(i, stop)`` in n threads for ``duration`` s; returns (summed counts, elapsed)."""
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


class LeanAnswer:
    def __init__(self, status, body):
        self.status_code, self.text = status, body.decode()

    def json(self):
        return json.loads(self.text)


class LeanSession:
    """The subset of ``requests.Session`` round_trip uses, on one keep-alive connection
    (http.client): about 0.1 ms of client CPU per request where requests takes about 1 ms
    (measured beside each other: 1.09 vs 2.20 ms for the same poll), so that the figure
    is the server's more than the client's. ``requests`` is measured beside it."""

    def __init__(self):
        self.conns = {}

    def _call(self, method, url, params=None, json=None, headers=None, timeout=30):
        parts = urllib.parse.urlsplit(url)
        conn = self.conns.get(parts.netloc)
        if conn is None:
            conn = self.conns[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=timeout)
        target = parts.path + ("?" + urllib.parse.urlencode(params) if params else "")
        body = None if json is None else dumps(json)
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, target, body, sent)
        answer = conn.getresponse()
        return LeanAnswer(answer.status, answer.read())

    def get(self, url, **kw):
        return self._call("GET", url, **kw)

    def post(self, url, **kw):
        return self._call("POST", url, **kw)

    def patch(self, url, **kw):
        return self._call("PATCH", url, **kw)


def round_trip(s, base, queue, worker, service=False):
    """enqueue -> poll -> complete once; False when another client took the job.
    ``service``: poll and completion answered by the jobs service, not by the gateway's
    oc.job_lease (a repeated worker_id is an argument the gateway leaves to the service)."""
    who = [("worker_id", worker)] * (2 if service else 1)
    r = s.post(f"{base}/queue", params={"queue": queue}, json=JOB, headers=USER, timeout=30)
    assert r.status_code == 201, r.text
    r = s.get(f"{base}/queue/poll", params=[("queue", queue), *who], headers=WORKER, timeout=30)
    if r.status_code == 404:  # another thread took "our" job first; the next loop evens out
        return False
    assert r.status_code == 200, r.text
    r = s.patch(
        f"{base}/jobs/{r.json()['job_id']}/completed",
        params=who,
        json={"failed": False, "info": {"bench": True}},
        headers=WORKER,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return True


def gateway_round_trips(base, queue, clients, duration, service=False, session=LeanSession):
    def body(i, stop):
        s = session()
        done = 0
        while not stop.is_set():
            done += round_trip(s, base, queue, f"bench-{i}", service)
        return done

    return run_threads(clients, duration, body)


def redis_round_trips(url, clients, duration):
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
        return run_threads(clients, duration, body)
    finally:
        for k in client.scan_iter(f"{key}*", count=1000):
            client.delete(k)


def percentiles(samples):
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)] * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
    }


def bulk_enqueue(s, base, queue, jobs):
    for i in range(0, len(jobs), 1000):
        r = s.post(
            f"{base}/queue", params={"queue": queue}, json={"jobs": jobs[i : i + 1000]}, headers=USER, timeout=60
        )
        assert r.status_code == 201, r.text


def wait_drained(r, queue, total, timeout=600):
    """Seconds until ``queue`` has no waiting and no running job (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        pipe = r.pipeline(transaction=False)
        pipe.llen(keys.queue(queue))
        pipe.zcard(keys.LEASES)
        waiting, running = pipe.execute()
        if waiting == 0 and running == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue}: {waiting} waiting, {running} running after {timeout}s")
        time.sleep(0.01)


def ours(stack, base, settings, n_workers, n_jobs):
    """Built-in workers: started idle, then n_jobs bulk-enqueued; jobs/s until all done."""
    queue = f"bench-ours-{n_workers}-{uuid.uuid4().hex[:4]}"
    r = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    procs = []
    logs = []
    for i in range(n_workers):
        log = open(stack.var / f"bench-worker-{queue}-{i}.log", "wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    *WORKER_CMD,
                    "--queue",
                    queue,
                    "--worker-id",
                    f"{queue}-{i}",
                    "--url",
                    base,
                    "--poll-interval",
                    "0.02",
                ],
                cwd=ROOT,
                env={**stack.env, "LOG_LEVEL": "WARNING"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        ids = {f"{queue}-{i}" for i in range(n_workers)}
        deadline = time.monotonic() + 60
        while not ids <= set(r.zrange(keys.WORKERS, 0, -1)):  # every worker has said hello
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not start")
            time.sleep(0.05)
        s = requests.Session()
        t0 = time.perf_counter()
        bulk_enqueue(s, base, queue, [JOB] * n_jobs)
        wait_drained(r, queue, n_jobs)
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        for log in logs:
            log.close()
    return n_jobs / elapsed


def worker_runs(stack, base, settings, n_jobs, rounds, say):
    """Rounds of RQ 1, ours 1, RQ 2, ours 2 (interleaved, so that a noisy moment hits
    both); medians. Ours start with the recorder caught up; its catch-up after each run
    is reported (``record_lag_s``: the run's records are in MongoDB that much later)."""
    r = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    runs = {n: {"ours": [], "rq": [], "record_lag_s": []} for n in (1, 2)}
    for i in range(rounds):
        for n in (1, 2):
            runs[n]["rq"].append(rq_baseline(settings, n, n_jobs))
            wait_recorded(r)
            runs[n]["ours"].append(ours(stack, base, settings, n, n_jobs))
            runs[n]["record_lag_s"].append(round(wait_recorded(r), 2))
            say(
                f"round {i + 1}, {n} worker(s): built-in {runs[n]['ours'][-1]:7.1f} jobs/s "
                f"(records in MongoDB {runs[n]['record_lag_s'][-1]:.1f} s after the last job) "
                f"| RQ SimpleWorker {runs[n]['rq'][-1]:7.1f} jobs/s"
            )
    w = {}
    for n in (1, 2):
        ours_rate, rq_rate = statistics.median(runs[n]["ours"]), statistics.median(runs[n]["rq"])
        w[str(n)] = {
            "ours_jobs_per_s": round(ours_rate, 1),
            "rq_jobs_per_s": round(rq_rate, 1),
            "ratio": round(ours_rate / rq_rate, 3),
            "runs": {k: [round(v, 1) for v in values] for k, values in runs[n].items()},
        }
        say(f"{n} worker(s), median of {rounds}: built-in {ours_rate:7.1f} | RQ {rq_rate:7.1f} | x{w[str(n)]['ratio']}")
    w["scaling_ours"] = round(w["2"]["ours_jobs_per_s"] / w["1"]["ours_jobs_per_s"], 3)
    w["scaling_rq"] = round(w["2"]["rq_jobs_per_s"] / w["1"]["rq_jobs_per_s"], 3)
    say(f"2 workers / 1 worker: built-in x{w['scaling_ours']}, RQ x{w['scaling_rq']}")
    return w


def rq_baseline(settings, n_workers, n_jobs):
    from rq import Queue  # noqa: PLC0415 -- a bench-only dependency; bench/run.py loads every module
    from rq.registry import FinishedJobRegistry  # noqa: PLC0415 -- as above

    r = redis_lib.Redis.from_url(settings["REDIS_URL"])
    name = f"bench-rq-{n_workers}-{uuid.uuid4().hex[:4]}"
    q = Queue(name, connection=r)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RQ_WORKER, settings["REDIS_URL"], name],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n_workers)
    ]
    try:
        deadline = time.monotonic() + 60
        while len([w for w in r.smembers("rq:workers:" + name)]) < n_workers:
            if time.monotonic() > deadline:
                raise TimeoutError("rq workers did not start")
            time.sleep(0.05)
        registry = FinishedJobRegistry(name, connection=r)
        t0 = time.perf_counter()
        q.enqueue_many([Queue.prepare_data("json.dumps", args=({"n": 1},)) for _ in range(n_jobs)])
        deadline = time.monotonic() + 600
        while registry.count < n_jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rq: {registry.count} of {n_jobs} finished")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return n_jobs / elapsed


def bulk_vs_single(base, n=1000):
    s = requests.Session()
    queue = f"bench-bulk-{uuid.uuid4().hex[:4]}"
    t0 = time.perf_counter()
    bulk_enqueue(s, base, queue, [JOB] * n)
    bulk = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        r = s.post(f"{base}/queue", params={"queue": queue}, json=JOB, headers=USER, timeout=30)
        assert r.status_code == 201, r.text
    single = time.perf_counter() - t0
    return bulk, single


def poll_skipping(base, samples, skipped=100):
    """Median GET /queue/poll latency: with modules=echo past `skipped` jobs it cannot take
    vs a plain poll, alternated."""
    s = requests.Session()
    skip_q, plain_q = f"bench-skip-{uuid.uuid4().hex[:4]}", f"bench-plain-{uuid.uuid4().hex[:4]}"
    other = {"job_title": "other", "tasks": [{"module": "not-here", "data": {}}]}
    bulk_enqueue(s, base, skip_q, [other] * skipped + [JOB] * samples)
    bulk_enqueue(s, base, plain_q, [JOB] * samples)
    times = {"skip": [], "plain": []}
    for _ in range(samples):
        for kind, params in (
            ("skip", {"queue": skip_q, "worker_id": "bench-skip", "modules": "echo"}),
            ("plain", {"queue": plain_q, "worker_id": "bench-plain"}),
        ):
            t0 = time.perf_counter()
            r = s.get(f"{base}/queue/poll", params=params, headers=WORKER, timeout=30)
            times[kind].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    return percentiles(times["skip"]), percentiles(times["plain"])


def wait_recorded(r, timeout=600):
    """Seconds until the recorder has written every finished job (Redis keeps them until then)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while r.scard(keys.FINISHED):
        if time.monotonic() > deadline:
            raise TimeoutError("the recorder did not catch up")
        time.sleep(0.02)
    return time.perf_counter() - t0


def recorded_cost(base, settings, samples):
    """With the recorder caught up: enqueue->poll->complete latency through the gateway
    (the request path), then the recorder's time per job to write those ``samples`` jobs.
    Returns (latency percentiles, recorder s per job, completed records in MongoDB)."""

    r = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    wait_recorded(r)
    s = requests.Session()
    queue = f"bench-rec-{uuid.uuid4().hex[:4]}"
    trips = []
    for _ in range(samples):
        t0 = time.perf_counter()
        assert round_trip(s, base, queue, "bench-rec")
        trips.append(time.perf_counter() - t0)
    per_job = wait_recorded(r) / samples
    mongo = MongoClient(settings["MONGO_URI"])
    count = count_documents(mongo[settings["MONGO_JOB_DB"]][settings["MONGO_JOB_COLL_COMPLETED"]])
    mongo.close()
    return percentiles(trips), per_job, count


def record_write_cost(settings, n=200):
    """The recorder's own write (``JobStore.write``) of ``n`` finished jobs shaped like the
    last recorded one, timed, then removed again: seconds per job at the current size."""

    mongo = MongoClient(settings["MONGO_URI"])
    store = JobStore.from_config(mongo, settings)
    model = store.final["completed"].find_one({}, sort=[("added", -1)])
    model.pop("_id", None)
    docs = [{**model, "job_id": f"bench-write-{uuid.uuid4().hex}"} for _ in range(n)]
    t0 = time.perf_counter()
    store.write(docs, [])
    elapsed = time.perf_counter() - t0
    store.final["completed"].delete_many({"_id": {"$in": [d["job_id"] for d in docs]}})
    mongo.close()
    return elapsed / n


def fill_records(base, settings, target, seconds, clients=4):
    """Finish jobs (bulk enqueue, polls and completions through the gateway, ``clients``
    threads) until MongoDB has about ``target`` completed records or ``seconds`` have passed."""

    mongo = MongoClient(settings["MONGO_URI"])
    completed = mongo[settings["MONGO_JOB_DB"]][settings["MONGO_JOB_COLL_COMPLETED"]]
    r = redis_lib.Redis.from_url(settings["REDIS_URL"], decode_responses=True)
    deadline = time.monotonic() + seconds
    start = count_documents(completed)
    finished = [0] * clients

    def body(i, stop):
        s = requests.Session()
        queue = f"bench-fill-{uuid.uuid4().hex[:4]}"
        while not stop.is_set() and time.monotonic() < deadline and start + sum(finished) < target:
            if r.scard(keys.FINISHED) > 2000:  # let the recorder catch up: Redis holds them meanwhile
                time.sleep(0.2)
                continue
            n = 100
            bulk_enqueue(s, base, queue, [JOB] * n)
            for _ in range(n):
                job = s.get(
                    f"{base}/queue/poll",
                    params={"queue": queue, "worker_id": f"bench-fill-{i}"},
                    headers=WORKER,
                    timeout=30,
                ).json()
                s.patch(
                    f"{base}/jobs/{job['job_id']}/completed",
                    params={"worker_id": f"bench-fill-{i}"},
                    json={"failed": False, "info": {}},
                    headers=WORKER,
                    timeout=30,
                )
            finished[i] += n
            if i == 0 and finished[0] % 2000 == 0:
                recorded = count_documents(completed)
                print(f"    ... {start + sum(finished)} jobs finished, {recorded} recorded", flush=True)

    stop, errors = threading.Event(), []

    def loop(i):
        try:
            body(i, stop)
        except Exception as exc:  # reported, never hidden
            errors.append(repr(exc))
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mongo.close()
    if errors:
        raise RuntimeError(f"fill thread failed: {errors[0]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench jobs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per worker run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the worker runs (medians)")
    parser.add_argument("--samples", type=int, default=200, help="requests timed per latency figure")
    parser.add_argument("--records", type=int, default=100_000, help="recorded jobs to reach (part 5)")
    parser.add_argument("--fill-seconds", type=float, default=120.0, help="time allowed to record them")
    parser.add_argument("--mongo-uri", default=None, help="a real MongoDB instead of mongoeco")
    parser.add_argument("--only", default="workers,round_trips,bulk,poll,records", help="parts to run")
    args, _others = parser.parse_known_args(argv)  # bench/run.py hands every benchmark the same arguments
    parts = set(args.only.split(","))

    env = isolated_env(RATE_LIMITS="off", LOG_LEVEL="WARNING")
    if args.mongo_uri:
        env["MONGO_URI"] = args.mongo_uri
    var = Path(tempfile.mkdtemp(prefix="oc-bench-jobs-"))
    stack = Stack(env=env, var_dir=var, mongo_file=True, quiet=True, workers=0)
    print(f"starting the stack in {var} ...", flush=True)
    stack.start()
    results = {
        "mongo": "external" if args.mongo_uri else "mongoeco sqlite",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }

    def say(text):
        print(text, flush=True)

    try:
        base = stack.url + "/newapi"
        settings = settings_from_env(stack.env)
        gateway_round_trips(base, "bench-warm", 2, 1.0)  # connections and script caches

        if "workers" in parts:
            results["workers"] = worker_runs(stack, base, settings, args.jobs, args.rounds, say)

        if "round_trips" in parts:
            t = results["round_trips"] = {}
            for clients in (1, 8):
                n, elapsed = gateway_round_trips(base, f"bench-rt-{clients}", clients, args.duration)
                k, elapsed3 = gateway_round_trips(base, f"bench-rs-{clients}", clients, args.duration, True)
                q, elapsed4 = gateway_round_trips(
                    base, f"bench-rq-{clients}", clients, args.duration, session=requests.Session
                )
                m, elapsed2 = redis_round_trips(settings["REDIS_URL"], clients, args.duration)
                t[str(clients)] = {
                    "gateway_per_s": round(n / elapsed, 1),
                    "service_poll_complete_per_s": round(k / elapsed3, 1),
                    "gateway_requests_client_per_s": round(q / elapsed4, 1),
                    "plain_redis_per_s": round(m / elapsed2, 1),
                }
                say(
                    f"{clients} client(s): gateway enqueue->poll->complete {n / elapsed:7.1f}/s | "
                    f"poll+complete by the jobs service {k / elapsed3:7.1f}/s | "
                    f"gateway, requests client {q / elapsed4:7.1f}/s | "
                    f"plain Redis LPUSH->RPOP->SET {m / elapsed2:8.1f}/s"
                )

        if "bulk" in parts:
            bulk, single = bulk_vs_single(base)
            results["bulk_enqueue"] = {
                "bulk_1000_s": round(bulk, 3),
                "single_1000_s": round(single, 3),
                "ratio": round(single / bulk, 1),
            }
            say(
                f"1,000 jobs: one bulk POST {bulk * 1000:.0f} ms | 1,000 single POSTs {single * 1000:.0f} ms "
                f"| x{single / bulk:.1f}"
            )

        if "poll" in parts:
            skip, plain = poll_skipping(base, args.samples)
            results["poll_skipping_100"] = {"modules_skip_100": skip, "plain": plain}
            results["poll_skipping_100"]["ratio"] = round(skip["median_ms"] / plain["median_ms"], 3)
            say(
                f"poll: modules skipping 100 median {skip['median_ms']:.2f} ms | plain {plain['median_ms']:.2f} ms | "
                f"x{results['poll_skipping_100']['ratio']}"
            )

        if "records" in parts:
            rec = results["records"] = {}
            for size, target in (("small", 1000), ("large", args.records)):
                fill_records(base, settings, target, args.fill_seconds)
                trips, per_job, count = recorded_cost(base, settings, args.samples)
                write = record_write_cost(settings)
                rec[size] = {
                    "recorded": count,
                    "round_trip": trips,
                    "recorder_s_per_job": round(per_job, 4),
                    "write_s_per_job": round(write, 5),
                }
                say(
                    f"{count:>6} recorded: round trip median {trips['median_ms']:.2f} ms, "
                    f"recorder caught up {per_job * 1000:.1f} ms/job after, its write {write * 1000:.2f} ms/job"
                )
            rec["write_growth"] = round(rec["large"]["write_s_per_job"] / rec["small"]["write_s_per_job"], 3)
            say(f"record write growth: x{rec['write_growth']}")
            rec["round_trip_growth"] = round(
                rec["large"]["round_trip"]["median_ms"] / rec["small"]["round_trip"]["median_ms"], 3
            )
            say(
                f"round trip growth {rec['small']['recorded']} -> {rec['large']['recorded']} recorded: "
                f"x{rec['round_trip_growth']}"
            )
    finally:
        stack.stop()
    results["load_average_at_end"] = os.getloadavg()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {out / 'jobs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
