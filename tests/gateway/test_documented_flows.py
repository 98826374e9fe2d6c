"""The statuses docs/jobs.md, docs/publish.md and docs/operations.md promise along a job's and a
puzzle's life, each compared with a real answer through the gateway (issue 17). Where one request
cannot show a status (a lease, a lock, a disabled worker), the steps before it make the state.

Each step names the doc and a phrase of it that states the status: the test fails when the phrase
leaves the doc (update the step with the doc) or the answer disagrees with it."""

from pathlib import Path

import requests
from gw import rid
from helpers import auth, create_puzzle

DOCS = Path(__file__).resolve().parents[2] / "docs"
USER, OTHER, WORKER, ADMIN = auth("token_1"), auth("token_2"), auth("token_worker"), auth("token_admin")


class Docs:
    def __init__(self, stack):
        self.url = stack.url
        self.text = {}

    def says(self, doc, phrase):
        if doc not in self.text:
            self.text[doc] = " ".join((DOCS / doc).read_text().split())
        assert " ".join(phrase.split()) in self.text[doc], f"{doc} no longer says {phrase!r}"

    def check(self, doc, phrase, status, code, method, path, headers=None, **kw):
        """Send the request; its status (and error code) must be the one ``phrase`` of ``doc`` states."""
        self.says(doc, phrase)
        answer = requests.request(method, self.url + path, headers=headers or {}, timeout=15, **kw)
        assert answer.status_code == status, (doc, phrase, answer.status_code, answer.text[:300])
        if code:
            assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
            assert answer.json()["error"] == code, (doc, phrase, answer.text[:300])
        return answer


def test_a_job_s_life_answers_as_docs_jobs_md_says(stack):
    d, queue = Docs(stack), rid("docq")
    w, w2 = f"{queue}-w1", f"{queue}-w2"
    job = {"job_title": "docs", "tasks": [{"module": "echo", "data": {"x": 1}}]}
    q = f"/newapi/queue?queue={queue}"
    jobs = "jobs.md"

    d.check(jobs, "No or unknown token: 401", 401, "unauthorized", "GET", q)
    d.check(jobs, "A role that may not do a thing: 403", 403, None, "GET", q, USER)
    d.check(jobs, "anything else 400 `bad_limit`", 400, "bad_limit", "GET", q + "&limit=abc", WORKER)
    d.check(
        jobs, "404 `queue_empty`", 404, "queue_empty", "GET", f"/newapi/queue/poll?queue={queue}&worker_id={w}", WORKER
    )
    d.check(jobs, "400 when not a JSON object", 400, "bad_job", "POST", q, USER, json=["not", "an", "object"])
    first = d.check(jobs, '201 the job (`job_id`, `added`, `state: "queued"`', 201, None, "POST", q, USER, json=job)
    job_id = first.json()["job_id"]
    assert first.json()["state"] == "queued"
    poll = f"/newapi/queue/poll?queue={queue}&worker_id={w}"

    # a disabled queue and a disabled worker hand nothing out
    d.check(jobs, '200 `{"queue", "attributes"}`', 200, None, "PATCH", q, ADMIN, json={"disabled": True})
    d.check(jobs, "404 `queue_disabled`", 404, "queue_disabled", "GET", poll, WORKER)
    d.check(jobs, '200 `{"queue", "attributes"}`', 200, None, "PATCH", q, ADMIN, json={"disabled": False})
    d.check(
        jobs,
        "200; also for a worker not seen yet",
        200,
        None,
        "PATCH",
        f"/newapi/workers/{w}",
        ADMIN,
        json={"disabled": True},
    )
    d.check(jobs, "423 `worker_disabled`", 423, "worker_disabled", "GET", poll, WORKER)
    d.check(
        jobs,
        "200; also for a worker not seen yet",
        200,
        None,
        "PATCH",
        f"/newapi/workers/{w}",
        ADMIN,
        json={"disabled": False},
    )

    # the lease
    leased = d.check(jobs, "200 the oldest job", 200, None, "GET", poll, WORKER).json()
    assert leased["job_id"] == job_id and leased["state"] == "running"
    done = {"failed": False, "info": {"ok": True}}
    completed = f"/newapi/jobs/{job_id}/completed"
    d.check(
        jobs,
        "409 `not_lease_holder` when W does not hold the lease",
        409,
        "not_lease_holder",
        "PATCH",
        f"{completed}?worker_id={w2}",
        WORKER,
        json=done,
    )
    d.check(
        jobs,
        "400 `bad_release`",
        400,
        "bad_release",
        "POST",
        f"/newapi/jobs/{job_id}/release?worker_id={w}",
        WORKER,
        json={"reason": "x", "retry_after_s": -1},
    )
    d.check(
        jobs,
        "a bad list → 400 `bad_heartbeat`",
        400,
        "bad_heartbeat",
        "POST",
        f"/newapi/workers/{w}",
        WORKER,
        json={"jobs": "not a list"},
    )
    beat = d.check(jobs, '200 `{"worker_id", "leases"', 200, None, "POST", f"/newapi/workers/{w}", WORKER, json={})
    assert job_id in beat.json()["leases"]
    d.check(jobs, "404 if unknown", 404, None, "GET", f"/newapi/workers/{queue}-nobody", WORKER)

    # events of the running job
    events = f"/newapi/jobs/{job_id}/events"
    d.check(
        jobs,
        "400 `bad_events` (with `index`)",
        400,
        "bad_events",
        "POST",
        f"{events}?worker_id={w}",
        WORKER,
        json={"attempt": 1, "events": [{"no type": 1}]},
    )
    d.check(
        jobs,
        "`attempt_mismatch` (not the job's current attempt)",
        409,
        "attempt_mismatch",
        "POST",
        f"{events}?worker_id={w}",
        WORKER,
        json={"attempt": 7, "events": [{"type": "progress", "data": 1}]},
    )
    d.check(
        jobs,
        '200 `{"accepted": k, "duplicates": d, "last_id"}`',
        200,
        None,
        "POST",
        f"{events}?worker_id={w}",
        WORKER,
        json={"attempt": 1, "events": [{"type": "progress", "data": 1}]},
    )
    d.check(jobs, "400 `bad_limit` / `bad_after`", 400, "bad_limit", "GET", f"{events}?limit=0", USER)
    d.check(jobs, "`bad_after`; another user's job 404", 404, None, "GET", events, OTHER)

    # the end
    final = d.check(
        jobs,
        "200 the finished job, `completed` or `failed`",
        200,
        None,
        "PATCH",
        f"{completed}?worker_id={w}",
        WORKER,
        json=done,
    )
    assert final.json()["state"] == "completed"
    d.check(
        jobs,
        "409 `job_not_running` when it is queued or already finished",
        409,
        "job_not_running",
        "PATCH",
        f"{completed}?worker_id={w}",
        WORKER,
        json=done,
    )
    d.check(
        jobs,
        "409 `job_finished` for a finished job",
        409,
        "job_finished",
        "POST",
        f"/newapi/jobs/{job_id}/cancel",
        USER,
    )
    d.check(
        jobs,
        "the job in any state with `history`; another user's job is 404",
        404,
        None,
        "GET",
        f"/newapi/jobs/{job_id}",
        OTHER,
    )
    d.check(jobs, "the job in any state with `history`", 200, None, "GET", f"/newapi/jobs/{job_id}", USER)

    # cancelling a queued job: anyone but its owner (or an admin) is told it does not exist
    second = requests.post(stack.url + q, headers=USER, json=job, timeout=15).json()["job_id"]
    d.check(
        jobs, "the job's owner, admin (anyone else: 404)", 404, None, "POST", f"/newapi/jobs/{second}/cancel", OTHER
    )
    cancelled = d.check(
        jobs,
        "202 the job: a queued one is `cancelled` at once",
        202,
        None,
        "POST",
        f"/newapi/jobs/{second}/cancel",
        USER,
    )
    assert cancelled.json()["state"] == "cancelled"
    d.check(jobs, "| `DELETE /jobs/{id}` | owner, admin | 200;", 200, None, "DELETE", f"/newapi/jobs/{second}", USER)

    # listings and the rest of the table
    d.check(jobs, "400 without `mine=1` or with a bad `limit`/`offset`", 400, None, "GET", "/newapi/jobs", USER)
    d.check(
        jobs,
        "400 without `mine=1` or with a bad `limit`/`offset`",
        400,
        None,
        "GET",
        "/newapi/jobs?mine=1&limit=0",
        USER,
    )
    d.check(jobs, '`{"jobs": [the caller\'s jobs, newest first]', 200, None, "GET", "/newapi/jobs?mine=1", USER)
    d.check(jobs, '`{"workers": [ids], "count": n}`', 200, None, "GET", "/newapi/workers", WORKER)
    d.check(jobs, "404 when absent", 404, None, "GET", f"/newapi/data/docs/{queue}", WORKER)
    d.check(jobs, '200 `{"status": "online"}`', 200, None, "GET", "/newapi/status/health", USER)
    d.check(jobs, "| `DELETE /queue` | admin | 200", 200, None, "DELETE", q, ADMIN)


def test_a_puzzle_s_tokens_and_moves_answer_as_docs_publish_md_says(stack):
    d, pub = Docs(stack), "publish.md"
    puzzle_id = create_puzzle(stack, 3, 3, width=3000, height=3000)
    base = f"/newapi/puzzle/{puzzle_id}"
    board = d.check(pub, '`{"puzzle_id", "status", "rows", "cols"', 200, None, "GET", f"{base}/", USER).json()
    fixed = next(p["id"] for p in board["pieces"] if p["immovable"])
    free = next(p for p in board["pieces"] if not p["immovable"])
    token = f"{base}/piece/{free['id']}/token/?mark=tab1"

    d.check(
        pub,
        "Token answers, in this order: unknown puzzle or piece 404",
        404,
        None,
        "GET",
        f"{base}/piece/999/token/",
        USER,
    )
    d.check(
        pub,
        "immovable piece 400 `piece_immovable`",
        400,
        "piece_immovable",
        "GET",
        f"{base}/piece/{fixed}/token/",
        USER,
    )
    grant = d.check(pub, '200 `{"token", "lock", "expires"}`', 200, None, "GET", token, USER).json()
    again = d.check(
        pub,
        "the lock holder asking again (same player, same `mark`) 200 with the same token",
        200,
        None,
        "GET",
        token,
        USER,
    ).json()
    assert again["token"] == grant["token"]
    locked = d.check(
        pub,
        "someone else's lock (or the same player from another `mark`) 409 `piece_locked` with `Retry-After`",
        409,
        "piece_locked",
        "GET",
        token,
        OTHER,
    )
    assert locked.headers["Retry-After"]

    move = f"{base}/piece/{free['id']}/move/"
    d.check(
        pub,
        "`bad_move`: missing or non-numeric `x`/`y`",
        400,
        "bad_move",
        "PATCH",
        move,
        USER,
        json={"token": grant["token"], "x": "left", "y": 1},
    )
    d.check(
        pub,
        "→ 404 unknown puzzle/piece",
        404,
        None,
        "PATCH",
        f"{base}/piece/999/move/",
        USER,
        json={"token": grant["token"], "x": 1, "y": 1},
    )
    d.check(
        pub,
        "409 `token_invalid` (used, expired, replaced by a newer grant, someone else's",
        409,
        "token_invalid",
        "PATCH",
        move,
        OTHER,
        json={"token": grant["token"], "x": 1, "y": 1},
    )
    # far from every neighbour: no join, so the move is a plain 204
    where = {"x": 2900 - free["x"] % 7, "y": 2900 - free["y"] % 7}
    moved = d.check(
        pub,
        "204 once applied and published; header `X-Puzzle-Seq",
        204,
        None,
        "PATCH",
        move,
        USER,
        json={"token": grant["token"], **where},
    )
    assert int(moved.headers["X-Puzzle-Seq"]) >= 1
    d.check(
        pub,
        "409 `token_invalid` (used,",
        409,
        "token_invalid",
        "PATCH",
        move,
        USER,
        json={"token": grant["token"], **where},
    )
    d.check(
        pub,
        "a larger one is 400 `bad_puzzle_id`, `bad_piece` or `bad_since` naming the range",
        400,
        "bad_since",
        "GET",
        f"{base}/updates/?since={2**63}",
        USER,
    )


def test_what_docs_operations_md_promises_of_the_gateway(stack):
    d, ops = Docs(stack), "operations.md"
    d.check(ops, "(Lua: 200 while the gateway reaches Redis, 503 otherwise)", 200, None, "GET", "/healthz")
    for path in ("/metrics", "/_metrics"):
        d.check(ops, "its public port answers 404 for both", 404, None, "GET", path)
    # each service's own /healthz (compose's health check), on its own address
    d.says(ops, "`/healthz` is 503 with `problems` otherwise")
    for service in ("api", "jobs", "publish", "storage"):
        addr = stack.env[f"{service.upper()}_ADDR"]
        answer = requests.get(f"http://{addr}/healthz", timeout=15)
        assert answer.status_code == 200, (service, answer.text)
