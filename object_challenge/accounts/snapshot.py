"""The versioned snapshot of tokens and bucket rules that the gateway follows.

Every change to users, tokens, prefixes or grants calls :func:`publish`. It
rewrites ``oc:gw:tokens`` and ``oc:gw:rules`` and bumps ``oc:gw:version`` in one
MULTI/EXEC, so the gateway never sees half a change; the gateway polls the
version every ``SNAPSHOT_POLL_SECONDS`` (0.5 s) and drops its caches when it
moves. The full rewrite is O(users + grants) per change, which is fine for
thousands of users; past that, switch to per-key updates with the same version bump.
"""

import json
import logging
import time

from object_challenge.accounts.models import Prefix, User, UserPrefix, name_problem
from object_challenge.core import keys
from object_challenge.core.extensions import redis

log = logging.getLogger(__name__)

# KEYS[1] the version; ARGV[1] now in ms. Returns the new version: one more than the
# last, and never below the clock, so that a version republished after Redis lost
# its data is always larger than any the gateway has seen before.
_BUMP_VERSION = """
local v = redis.call('INCR', KEYS[1])
local now = tonumber(ARGV[1])
if v < now then redis.call('SET', KEYS[1], now); v = now end
return v
"""


def grants_table():
    """``[(user_id, prefix, is_allowed), ...]`` from MongoDB, for the admission rule."""
    prefixes = {p.prefix_id: p.prefix for p in Prefix.objects.only("prefix_id", "prefix")}
    return [
        (g.user_id, prefixes[g.prefix_id], g.is_allowed)
        for g in UserPrefix.objects.only("user_id", "prefix_id", "is_allowed")
        if g.prefix_id in prefixes
    ]


def refused_users():
    """``[(user, problem)]``: users whose name breaks the name rule (made before it existed).

    They are left out of the snapshot, so the gateway refuses their token (401) and no
    name can break a header; rename or delete them (``manage.py user delete NAME``).
    """
    found = []
    for user in User.objects.only("user_id", "name"):
        problem = name_problem(user.name)
        if problem:
            found.append((user, problem))
    return found


def build():
    users = list(User.objects(token_hash__ne=None).only("user_id", "name", "role", "token_hash", "worker_prefix"))
    tokens = {}
    for u in users:
        problem = name_problem(u.name)
        if problem:
            log.warning("user id %s left out of the gateway snapshot: %s", u.user_id, problem)
            continue
        tokens[u.token_hash] = json.dumps(u.to_identity())
    rules = {
        "prefixes": sorted(p.prefix for p in Prefix.objects.only("prefix")),
        "grants": [list(g) for g in grants_table()],
    }
    return tokens, rules


def publish():
    """Write the snapshot and bump the version; returns the new version."""
    tokens, rules = build()
    staging = keys.GW_TOKENS + ":staging"
    pipe = redis.pipeline(transaction=True)
    pipe.delete(staging)
    if tokens:
        pipe.hset(staging, mapping=tokens)
        pipe.rename(staging, keys.GW_TOKENS)
    else:
        pipe.delete(keys.GW_TOKENS)
    pipe.set(keys.GW_RULES, json.dumps(rules))
    pipe.eval(_BUMP_VERSION, 1, keys.GW_VERSION, int(time.time() * 1000))
    return pipe.execute()[-1]


def current_version():
    value = redis.get(keys.GW_VERSION)
    return int(value) if value is not None else None


def republish_if_missing():
    """Scheduler task: after a Redis restart, put the snapshot back."""
    if redis.exists(keys.GW_VERSION):
        return None
    return publish()
