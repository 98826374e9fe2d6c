"""The response cache: HIT/MISS/BYPASS, per-user keys, Cache-Control, purges."""

import pytest
import requests
from gw import is_json_error, rid
from helpers import auth


@pytest.fixture(autouse=True)
def empty_cache(stack):
    answer = requests.delete(f"{stack.url}/newapi/_cache/", headers=auth("token_admin"), timeout=5)
    assert answer.status_code == 200


def get(stack, path, token="token_1"):
    return requests.get(stack.url + path, headers=auth(token) if token else {}, timeout=5)


def status(answer):
    return answer.headers.get("X-Cache-Status")


def test_public_answer_is_a_miss_then_a_hit(stack):
    first, second = get(stack, "/newapi/info"), get(stack, "/newapi/info")
    assert (status(first), status(second)) == ("MISS", "HIT")
    assert second.json() == first.json()
    assert second.headers["Cache-Control"] == "public, max-age=30"
    assert int(second.headers["Age"]) >= 0


def test_public_answer_is_shared_between_users_and_anonymous(stack):
    get(stack, "/newapi/info", "token_1")
    assert status(get(stack, "/newapi/info", "token_2")) == "HIT"
    assert status(get(stack, "/newapi/info", None)) == "HIT"


def test_query_strings_are_separate_entries(stack):
    get(stack, "/newapi/info?a=1")
    assert status(get(stack, "/newapi/info?a=2")) == "MISS"
    assert status(get(stack, "/newapi/info?a=1")) == "HIT"


def test_private_answer_is_cached_per_user(stack):
    mine = requests.post(
        f"{stack.url}/bucket", json={"bucket": rid("test").lower()}, headers=auth("token_1"), timeout=5
    ).json()["bucket"]
    a1, a2 = get(stack, "/newapi/buckets", "token_1"), get(stack, "/newapi/buckets", "token_1")
    b1 = get(stack, "/newapi/buckets", "token_2")
    assert (status(a1), status(a2), status(b1)) == ("MISS", "HIT", "MISS")
    assert mine in a2.text and mine not in b1.text


def test_refusals_are_not_cached(stack):
    get(stack, "/newapi/buckets", None)
    answer = get(stack, "/newapi/buckets", None)
    assert answer.status_code == 401 and status(answer) == "MISS"


def test_no_store_answers_are_not_cached(stack):
    get(stack, "/newapi/whoami")
    assert status(get(stack, "/newapi/whoami")) == "MISS"


@pytest.mark.parametrize(
    "path",
    [
        "/newapi/status/health",
        "/newapi/queue/poll",
        "/newapi/queue",
        "/newapi/puzzle/1/piece/0/token/",
        "/newapi/puzzle/1/updates/?since=0",
    ],
)
def test_jobs_and_puzzle_move_routes_are_never_cached(stack, path):
    get(stack, path, "token_worker")
    assert status(get(stack, path, "token_worker")) == "BYPASS"


def test_creating_a_bucket_purges_the_bucket_list(stack):
    get(stack, "/newapi/buckets", "token_1")
    name = rid("test").lower()
    assert (
        requests.post(f"{stack.url}/bucket", json={"bucket": name}, headers=auth("token_1"), timeout=5).status_code
        == 201
    )
    answer = get(stack, "/newapi/buckets", "token_1")
    assert status(answer) == "MISS" and name in answer.text


def test_a_write_under_a_path_purges_that_path_and_its_parents(stack):
    get(stack, "/newapi/info")
    requests.post(f"{stack.url}/newapi/info/anything", headers=auth("token_1"), timeout=5)
    assert status(get(stack, "/newapi/info")) == "MISS"


def test_admin_purge_method_drops_a_path_for_everyone(stack):
    get(stack, "/newapi/info?x=1")
    get(stack, "/newapi/buckets", "token_2")
    answer = requests.request("PURGE", f"{stack.url}/newapi/info", headers=auth("token_admin"), timeout=5)
    assert answer.status_code == 200 and answer.json()["purged"] == "/newapi/info"
    assert status(get(stack, "/newapi/info?x=1")) == "MISS"
    assert status(get(stack, "/newapi/buckets", "token_2")) == "HIT"


def test_admin_delete_under_newapi_cache_purges(stack):
    get(stack, "/newapi/info")
    answer = requests.delete(f"{stack.url}/newapi/_cache/newapi/info", headers=auth("token_admin"), timeout=5)
    assert answer.status_code == 200
    assert status(get(stack, "/newapi/info")) == "MISS"


def test_purge_all(stack):
    get(stack, "/newapi/info")
    get(stack, "/newapi/buckets", "token_3")
    assert requests.request("PURGE", f"{stack.url}/newapi/", headers=auth("token_admin"), timeout=5).ok
    assert status(get(stack, "/newapi/info")) == "MISS"
    assert status(get(stack, "/newapi/buckets", "token_3")) == "MISS"


@pytest.mark.parametrize("token,code", [("token_1", 403), ("token_worker", 403), (None, 401)])
def test_purging_needs_the_admin_role(stack, token, code):
    headers = auth(token) if token else {}
    is_json_error(requests.request("PURGE", f"{stack.url}/newapi/info", headers=headers, timeout=5), code)
    is_json_error(requests.delete(f"{stack.url}/newapi/_cache/info", headers=headers, timeout=5), code)


def test_cache_admin_path_takes_delete_only(stack):
    is_json_error(requests.get(f"{stack.url}/newapi/_cache/info", headers=auth("token_admin"), timeout=5), 405)


def test_an_expired_entry_is_refreshed_by_one_request_while_the_others_get_the_old_copy(stack):
    from concurrent.futures import ThreadPoolExecutor

    from helpers import wait_until

    assert status(get(stack, "/newapi/buckets", "token_2")) == "MISS"  # private, max-age=5
    wait_until(
        lambda: int(get(stack, "/newapi/buckets", "token_2").headers.get("Age", 0)) >= 4,
        timeout=8,
        interval=0.2,
        message="the entry nearly expired",
    )

    def batch():  # 10 at once, every 0.25 s: well inside the default per-user limit
        with ThreadPoolExecutor(10) as pool:
            return [status(a) for a in pool.map(lambda _: get(stack, "/newapi/buckets", "token_2"), range(10))]

    # up to two max-age periods: on a loaded machine the wait above may itself be the
    # request that refreshes the entry, and then the next expiry is the one observed
    statuses = wait_until(
        lambda: (lambda s: s if "MISS" in s else None)(batch()),
        timeout=12,
        interval=0.25,
        message="the refresh after expiry",
    )
    assert statuses.count("MISS") == 1
    assert set(statuses) - {"MISS"} <= {"HIT", "UPDATING"}
