"""Recovery after Redis lost its data: noticed by a marker key, run by the scheduler.

Redis holds the hot state (job order and leases, live boards, the gateway
snapshot); MongoDB holds what it is rebuilt from. The scheduler runs
:func:`recover_if_redis_lost` every second: while ``oc:ops:marker`` is there,
Redis has not lost its data since the last recovery and nothing is done. When the
marker is gone (a Redis restarted without its append-only file, a FLUSHALL, a new
empty Redis), it

- republishes the gateway snapshot,
- reloads every active puzzle into Redis (``flush.reload_missing``: each board
  continues its sequence numbers above any number handed out before the loss,
  and its watchers get a ``reload`` event),
- queues again every job MongoDB has as queued or running (``jobs().recover()``,
  what ``manage.py jobs recover`` does; last, as it reads every such job),

and then sets the marker. When the marker is there but Redis restarted (another
``run_id``: it came back from its append-only file, which may lack the last second),
jobs are recovered the same way and each live board skips its sequence ahead
(``flush.skip_ahead``) and tells its watchers. Each step is idempotent, so two schedulers, or a crash
half way, do no harm: the marker is set only once all steps ran.
"""

import logging
import time

from object_challenge.accounts import snapshot
from object_challenge.core.extensions import redis
from object_challenge.core.keys import key
from object_challenge.jobs.service import jobs
from object_challenge.publish import flush
from object_challenge.publish import keys as publish_keys

log = logging.getLogger(__name__)

MARKER = key("ops", "marker")


def recover_if_redis_lost():
    """Scheduler task; returns ``None`` (nothing lost) or what was recovered."""
    run_id = redis.info("server")["run_id"]
    marker = redis.get(MARKER)
    if marker == run_id:
        return None
    # the snapshot and the boards first: until the snapshot is back the api service checks every
    # token, until the boards skip ahead moves may reuse the numbers a lost second took; the jobs
    # step reads every queued job from MongoDB
    recovered, skipped = {"snapshot": bool(snapshot.republish_if_missing())}, {}
    if marker is None:
        what = "had lost its data"
        recovered["puzzles reloaded"] = flush.reload_missing()
    else:
        what = "restarted from its append-only file"
        # every board first (Redis only), then MongoDB's seq of each (a whole-document write on the stand-in)
        skipped = {pid: flush.skip_ahead(pid, keep=False) for pid in redis.smembers(publish_keys.LIVE)}
        recovered["puzzles skipped ahead"] = sum(bool(seq) for seq in skipped.values())
    for pid, seq in skipped.items():
        if seq:
            flush.keep_seq(pid, seq)
    recovered["jobs"] = len(jobs().recover())
    redis.set(MARKER, run_id)
    log.warning("Redis %s (marker %s): recovered %s at %s", what, MARKER, recovered, time.strftime("%H:%M:%S"))
    return recovered
