"""The ``players`` source: fetch one batch of player ids from the external player API.

A batch is split into calls of at most 100 ids. Before each call the source reserves a slot on
one of its API keys in a token bucket kept in Redis (``scripts/take.lua``), so every worker process
sharing a key together stays under that key's calls per second; it then sleeps until the slot.
A refusal anyway (REQUEST_LIMIT_EXCEEDED: the API's clock and ours differ a little) backs off
exponentially and retries; so do transient failures (HTTP 5xx, SOURCE_NOT_AVAILABLE, connection
errors), up to ``max_attempts`` each. Keys and the base URL come from settings, never from a client.
"""

import random
import time
from collections import Counter
from pathlib import Path

import requests

from object_challenge.campaigns import keys

MAX_IDS_PER_CALL = 100
SCRIPTS = Path(__file__).resolve().parent / "scripts"
TRANSIENT_ERRORS = {"SOURCE_NOT_AVAILABLE"}
RATE_LIMITED = "REQUEST_LIMIT_EXCEEDED"


class SourceError(Exception):
    """The API refused the call for a reason retrying will not fix (bad key, bad ids)."""


class SourceUnavailable(SourceError):
    """The API kept failing (or refusing for rate) through every attempt; the batch should be retried later."""


def battles_of(record):
    """The battle count of an ``account/info`` record (what ``diff_battles`` is computed from)."""
    return int(((record.get("statistics") or {}).get("all") or {}).get("battles") or 0)


def chunks(ids, size=MAX_IDS_PER_CALL):
    ids = list(ids)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class RateLimiter:
    """Calls-per-second buckets for a set of API keys, shared through Redis by every process."""

    def __init__(self, redis, api_keys, rps, burst=1, max_wait=5.0, sleep=time.sleep):
        if not api_keys:
            raise ValueError("at least one API key is needed")
        self.api_keys = list(api_keys)
        self.rps = float(rps)
        self.burst = max(1, int(burst))
        self.max_wait_us = int(max_wait * 1_000_000)
        self.sleep = sleep
        self._redis_keys = [keys.rate(k) for k in self.api_keys]
        self._take = redis.register_script((SCRIPTS / "take.lua").read_text()) if self.rps > 0 else None
        self._next = 0

    def acquire(self):
        """Block until a call may be made; returns the API key to make it with."""
        if self._take is None:  # no limit configured: rotate through the keys
            self._next = (self._next + 1) % len(self.api_keys)
            return self.api_keys[self._next]
        interval_us = max(1, int(1_000_000 / self.rps))
        while True:
            index, wait_us = self._take(keys=self._redis_keys, args=[interval_us, self.burst, self.max_wait_us])
            if wait_us > 0:
                self.sleep(wait_us / 1_000_000)
            if index:
                return self.api_keys[int(index) - 1]


class PlayerSource:
    """``fetch(ids) -> {player_id: record | None}`` for every id asked, against ``base_url``."""

    def __init__(
        self,
        base_url,
        api_keys,
        redis,
        rps,
        burst=1,
        *,
        session=None,
        timeout=10.0,
        max_attempts=5,
        max_refusals=20,
        backoff=0.05,
        max_backoff=2.0,
        sleep=time.sleep,
    ):
        self.url = base_url.rstrip("/") + "/account/info/"
        self.limiter = RateLimiter(redis, api_keys, rps, burst, sleep=sleep)
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_refusals = max_refusals
        self.backoff, self.max_backoff = backoff, max_backoff
        self.sleep = sleep
        self.stats = Counter()  # calls, refusals, failures, ids, found

    def fetch(self, ids):
        found = {}
        for chunk in chunks(dict.fromkeys(int(i) for i in ids)):
            found.update(self.fetch_call(chunk))
        return found

    def fetch_range(self, start, end):
        """Every id of ``start..end`` (both included)."""
        return self.fetch(range(int(start), int(end) + 1))

    def fetch_call(self, ids):
        """One ``account/info`` call (≤100 ids), with rate limiting, back-off and retries."""
        if len(ids) > MAX_IDS_PER_CALL:
            raise ValueError(f"at most {MAX_IDS_PER_CALL} ids per call, got {len(ids)}")
        failures = refusals = 0
        while True:
            api_key = self.limiter.acquire()
            self.stats["calls"] += 1
            outcome, detail = self._call(api_key, ids)
            if outcome == "ok":
                data = {int(k): v for k, v in detail.items()}
                answer = {i: data.get(i) for i in ids}
                self.stats["ids"] += len(answer)
                self.stats["found"] += sum(1 for v in answer.values() if v is not None)
                return answer
            if outcome == "refused":
                refusals += 1
                self.stats["refusals"] += 1
                if refusals >= self.max_refusals:
                    raise SourceUnavailable(f"{RATE_LIMITED} {refusals} times in a row for one call")
                self._back_off(refusals)
            elif outcome == "transient":
                failures += 1
                self.stats["failures"] += 1
                if failures >= self.max_attempts:
                    raise SourceUnavailable(f"player API failed {failures} times: {detail}")
                self._back_off(failures)
            else:
                raise SourceError(detail)

    def _call(self, api_key, ids):
        params = {"application_id": api_key, "account_id": ",".join(str(i) for i in ids)}
        try:
            response = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            return "transient", f"{type(exc).__name__}: {exc}"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "ok" and isinstance(body.get("data"), dict):
            return "ok", body["data"]
        error = (body or {}).get("error") or {} if isinstance(body, dict) else {}
        message = error.get("message") or f"HTTP {response.status_code}"
        if message == RATE_LIMITED:
            return "refused", message
        if message in TRANSIENT_ERRORS or response.status_code >= 500 or body is None:
            return "transient", message
        return "error", f"player API refused the call: {message} (code {error.get('code')})"

    def _back_off(self, attempt):
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        self.sleep(delay * random.uniform(0.5, 1.0))
