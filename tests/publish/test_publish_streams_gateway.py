"""Puzzle update streams never hold a service worker, and each user has a cap on open streams
(issue 17): the gateway loads a board Redis does not hold through one quick service call and
serves the stream itself; STREAMS_PER_USER open streams per user, 429 past it."""

import http.client
import json
import time

import requests
from gw import is_json_error, log_entry, redis_of, rid
from helpers import auth, create_puzzle, wait_until


def create(stack, rows=2, cols=3):
    return create_puzzle(stack, rows, cols)


class Stream:
    def __init__(self, stack, puzzle_id, token="token_1"):
        host, port = stack.url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=15)
        self.request_id = rid("stream")
        headers = {**auth(token), "X-Request-Id": self.request_id}
        self.conn.request("GET", f"/newapi/puzzle/{puzzle_id}/updates/", headers=headers)
        self.response = self.conn.getresponse()

    def close(self):
        self.conn.close()


def evict(stack, puzzle_id):
    """Redis forgets the board (as after an eviction or a lost Redis); MongoDB keeps it."""
    redis = redis_of(stack)
    wait_until(lambda: redis.zscore("oc:pub:dirty", puzzle_id) is None, timeout=20, message="the write-back")
    stale = redis.keys(f"oc:pub:puzzle:{puzzle_id}") + redis.keys(f"oc:pub:puzzle:{puzzle_id}:*")
    redis.delete(*stale)
    assert not redis.exists(f"oc:pub:puzzle:{puzzle_id}")


def test_a_stream_of_a_board_redis_lost_is_served_by_the_gateway(stack):
    puzzle_id = create(stack)
    streams = []
    try:
        for _ in range(12):  # more than the publish service's workers could hold
            evict(stack, puzzle_id)
            started = time.monotonic()
            stream = Stream(stack, puzzle_id, "token_2")
            streams.append(stream)
            assert stream.response.status == 200
            assert stream.response.getheader("Content-Type") == "text/event-stream"
            assert stream.response.readline() == b": ok\n"
            assert time.monotonic() - started < 10
        assert redis_of(stack).exists(f"oc:pub:puzzle:{puzzle_id}")
        # served by the gateway: the stream itself never went to a service
        streams[0].close()
        entry = log_entry(stack, streams[0].request_id, timeout=15)
        assert (entry["status"], entry["upstream"]) == (200, "")
        # the service is free for everyone else
        answer = requests.get(f"{stack.url}/newapi/puzzle/{puzzle_id}/?x=1", headers=auth("token_3"), timeout=10)
        assert answer.status_code == 200
        # and the streams are live: a move reaches them
        grant = requests.get(
            f"{stack.url}/newapi/puzzle/{puzzle_id}/piece/1/token/", headers=auth("token_3"), timeout=10
        )
        assert grant.status_code == 200, grant.text
        move = requests.patch(
            f"{stack.url}/newapi/puzzle/{puzzle_id}/piece/1/move/",
            json={"token": grant.json()["token"], "x": 11, "y": 22, "r": 0},
            headers=auth("token_3"),
            timeout=10,
        )
        assert move.status_code == 204, move.text
        line = streams[-1].response.readline()
        while not line.startswith(b"data: "):
            line = streams[-1].response.readline()
        assert json.loads(line[6:])["seq"] == int(move.headers["X-Puzzle-Seq"])
    finally:
        for stream in streams:
            stream.close()


def test_a_stream_of_an_unknown_puzzle_is_the_service_s_404_json(stack):
    answer = requests.get(f"{stack.url}/newapi/puzzle/987654321/updates/", headers=auth("token_1"), timeout=10)
    is_json_error(answer, 404)


def test_a_stream_of_a_puzzle_still_generating_is_409_at_once(stack):
    import pymongo

    puzzle_id = create(stack)
    evict(stack, puzzle_id)
    mongo = pymongo.MongoClient(stack.env["MONGO_URI"], serverSelectionTimeoutMS=5000)
    puzzles = mongo.get_default_database()["puzzles"]
    puzzles.update_one({"puzzle_id": puzzle_id}, {"$set": {"status": "generating"}})  # as while the artist works
    try:
        started = time.monotonic()
        answer = requests.get(f"{stack.url}/newapi/puzzle/{puzzle_id}/updates/", headers=auth("token_1"), timeout=10)
        is_json_error(answer, 409, "puzzle_generating")
        assert answer.headers["Retry-After"] and time.monotonic() - started < 5
    finally:
        puzzles.update_one({"puzzle_id": puzzle_id}, {"$set": {"status": "active"}})
        mongo.close()


def test_open_streams_per_user_are_capped(stack, gateway):
    stack.restart_gateway(STREAMS_PER_USER=2)
    puzzle_id = create(stack)
    first, second = Stream(stack, puzzle_id), Stream(stack, puzzle_id)
    try:
        assert (first.response.status, second.response.status) == (200, 200)
        refused = requests.get(f"{stack.url}/newapi/puzzle/{puzzle_id}/updates/", headers=auth("token_1"), timeout=10)
        body = is_json_error(refused, 429, "too_many_streams")
        assert body["limit"] == 2
        assert refused.headers["Retry-After"]
        # job event streams count in the same budget
        job = requests.post(
            f"{stack.url}/newapi/queue",
            json={"job_title": "cap", "tasks": [{"module": "no_such_module", "data": {}}]},
            headers=auth("token_1"),
            timeout=10,
        )
        assert job.status_code == 201, job.text
        events = requests.get(
            f"{stack.url}/newapi/jobs/{job.json()['job_id']}/events/stream", headers=auth("token_1"), timeout=10
        )
        is_json_error(events, 429, "too_many_streams")
        # another user is not affected
        other = Stream(stack, puzzle_id, "token_2")
        assert other.response.status == 200
        other.close()
        # a closed stream gives its place back
        first.close()

        def reopened():
            stream = Stream(stack, puzzle_id)
            stream.close()
            return stream.response.status == 200

        wait_until(reopened, timeout=10, interval=0.3, message="the closed stream's place")
    finally:
        first.close()
        second.close()


def test_a_stream_whose_redis_connection_breaks_says_reload_before_closing(stack):
    puzzle_id = create(stack)
    redis = redis_of(stack)
    before = {c["id"] for c in redis.client_list(_type="pubsub")}
    stream = Stream(stack, puzzle_id)
    try:
        assert stream.response.status == 200
        assert stream.response.readline() == b": ok\n"
        new = wait_until(
            lambda: [c["id"] for c in redis.client_list(_type="pubsub") if c["id"] not in before],
            timeout=10,
            message="the stream's subscription",
        )
        for client_id in new:  # as when Redis restarts under the stream
            redis.client_kill_filter(_id=client_id)
        lines = []
        while line := stream.response.readline():
            lines.append(line)
        assert b"event: reload\n" in lines
        data = next(line for line in lines if line.startswith(b"data: "))
        assert json.loads(data[6:]) == {"reload": True, "puzzle_id": puzzle_id}
    finally:
        stream.close()
