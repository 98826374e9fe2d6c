"""The players source: ≤100 ids per call, a rate per key shared through Redis, back-off and retries."""

import threading
import time

import pytest
import requests

from object_challenge.campaigns import keys, playerapi
from object_challenge.campaigns.source import PlayerSource, SourceError, SourceUnavailable, battles_of


def source(standin, redis, rps=0, api_keys=("key-a",), **kwargs):
    return PlayerSource(standin.url, list(api_keys), redis, rps, **kwargs)


def test_a_batch_is_split_into_calls_of_at_most_100_ids(standin, redis_client):
    answers = source(standin, redis_client).fetch_range(1, 250)
    assert sorted(answers) == list(range(1, 251))
    assert answers[1] == playerapi.player_record(1, 0)
    assert all((v is None) == (not playerapi.is_player(i, 1_200_000)) for i, v in answers.items())
    assert standin.state.snapshot()["calls"] == 3


def test_battles_of_reads_the_records_battle_count():
    assert battles_of(playerapi.player_record(1, 0)) == playerapi.battles_on(1, 0)


def fetch_concurrently(sources, calls_each):
    results, errors = {}, []

    def run(n, src):
        try:
            results[n] = src.fetch_range(n * calls_each * 100 + 1, (n + 1) * calls_each * 100)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate(sources)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    return results, time.monotonic() - started


def test_two_clients_sharing_a_key_together_stay_under_its_rate(standin, make_redis):
    # two sources with nothing in common but Redis (own connections, own HTTP sessions), as two workers
    standin.state.set_rate(25)
    sources = [source(standin, make_redis(), rps=25) for _ in range(2)]
    results, elapsed = fetch_concurrently(sources, calls_each=20)
    stats = standin.state.snapshot()
    assert stats["refusals"] == 0
    assert sum(len(r) for r in results.values()) == 4000
    assert elapsed >= 39 / 25 * 0.95  # 40 calls at 25/s from one shared bucket


def test_without_the_shared_bucket_the_key_goes_over_and_refusals_are_retried(standin, make_redis):
    # control: each source with its own Redis database, so each thinks it has the key to itself
    # each source believes it may send 100 calls/s while the key allows 10 (burst 1): they go
    # over even when a loaded machine slows both clients down
    standin.state.set_rate(10, burst=1)
    sources = [source(standin, make_redis(db), rps=100) for db in (1, 2)]
    results, _ = fetch_concurrently(sources, calls_each=20)
    assert standin.state.snapshot()["refusals"] > 0
    assert sum(s.stats["refusals"] for s in sources) == standin.state.snapshot()["refusals"]
    assert sum(len(r) for r in results.values()) == 4000  # backed off and retried: nothing lost


def test_several_keys_are_used_when_one_is_busy(standin, redis_client):
    src = source(standin, redis_client, rps=10, api_keys=("key-a", "key-b"))
    src.fetch_range(1, 400)
    by_key = standin.state.snapshot()["by_key"]
    assert by_key["key-a"]["calls"] == 2 and by_key["key-b"]["calls"] == 2


def test_transient_failures_are_retried(standin, redis_client):
    standin.state.set_faults(fail_ratio=0.5)
    src = source(standin, redis_client, backoff=0.001)
    assert len(src.fetch_range(1, 300)) == 300
    assert src.stats["failures"] == 2  # calls 2 and 4 of 5 fail (ratio 0.5, evenly spread)


def test_a_source_that_keeps_failing_raises_unavailable(standin, redis_client):
    standin.state.set_faults(fail_ratio=1)
    with pytest.raises(SourceUnavailable):
        source(standin, redis_client, backoff=0.001, max_attempts=3).fetch([1])
    assert standin.state.snapshot()["calls"] == 3


def test_an_error_retrying_cannot_fix_is_raised_at_once(standin, redis_client):
    with pytest.raises(SourceError, match="APPLICATION_ID_NOT_SPECIFIED"):
        source(standin, redis_client, api_keys=("",)).fetch([1])


def test_an_unreachable_api_is_unavailable(redis_client):
    from object_challenge.dev.devstores import free_port

    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(SourceUnavailable):
        source(Nowhere, redis_client, backoff=0.001, max_attempts=2, timeout=1).fetch([1])


def test_rate_keys_never_contain_the_api_key():
    name = keys.rate("secret-application-id")
    assert name.startswith("oc:campaigns:rate:") and "secret" not in name
    assert name == keys.rate("secret-application-id") != keys.rate("other")


def test_the_bucket_is_a_redis_key_under_the_campaigns_prefix(standin, redis_client):
    source(standin, redis_client, rps=5).fetch([1])
    assert redis_client.exists(keys.rate("key-a"))
    assert requests.get(f"{standin.url}/_admin/stats").json()["calls"] == 1
