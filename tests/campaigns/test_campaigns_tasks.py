"""The ``players`` task's calls to the service: a first delivery goes straight to the API."""

from types import SimpleNamespace

from object_challenge.campaigns import tasks


class _Session:
    """Answers the task's calls like the service; records them."""

    def __init__(self, state="queued"):
        self.state, self.calls = state, []

    def request(self, method, url, json=None, timeout=None):
        self.calls.append((method, url.rsplit("/newapi", 1)[1]))
        body = {"state": self.state} if method == "GET" else {"ingested": True}
        return SimpleNamespace(status_code=200, json=lambda: body, text="")


class _Source:
    def __init__(self):
        self.fetched = []

    def fetch_range(self, start, end):
        self.fetched.append((start, end))
        return {i: ({"account_id": i} if i % 2 else None) for i in range(start, end + 1)}


def run(monkeypatch, data, attempt, state="queued"):
    session, source = _Session(state), _Source()
    monkeypatch.setattr(tasks, "player_source", lambda: source)
    job = {"job_id": "j1", "attempt": attempt, "client": SimpleNamespace(url="http://gw/newapi", session=session)}
    base = {"campaign_id": "c1", "batch": 7, "start": 601, "end": 700}
    return tasks.players({**base, **data}, job), session.calls, source.fetched


def test_the_first_delivery_of_a_new_batch_posts_without_asking_first(monkeypatch):
    result, calls, fetched = run(monkeypatch, {"attempts_before": 0}, attempt=1)
    assert calls == [("POST", "/campaigns/c1/batches/7/results")] and fetched == [(601, 700)]
    assert result == {"batch": 7, "found": 50, "ingested": True}


def test_any_other_delivery_asks_first_and_skips_a_done_batch(monkeypatch):
    # the job's second attempt (its lease ran out), a successor job, a job queued before the field existed
    for data, attempt in (({"attempts_before": 0}, 2), ({"attempts_before": 1}, 1), ({}, 1)):
        result, calls, fetched = run(monkeypatch, data, attempt, state="done")
        assert (result, calls, fetched) == (
            {"batch": 7, "skipped": "already done"},
            [("GET", "/campaigns/c1/batches/7")],
            [],
        )
    result, calls, fetched = run(monkeypatch, {"attempts_before": 2}, attempt=1, state="queued")
    assert [c[0] for c in calls] == ["GET", "POST"] and fetched == [(601, 700)]
