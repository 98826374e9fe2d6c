"""Every named error of the job queue, once (service.py, workers.py, events.py raise them).

core.errors renders them in the house shape; ``code`` is the ``error`` field.
"""

from object_challenge.core.errors import ApiError, Conflict, Locked, NotFound


def refuse_gone(store, job_id, error, message):
    """A script did not know ``job_id`` (Redis has forgotten it): 404 if MongoDB has no
    record either, else ``error`` with ``message`` ({job_id}, {state}) and the state."""
    doc = store.get(job_id)
    if doc is None:
        raise JobNotFound(job_id)
    state = doc.get("state")
    raise error(message.format(job_id=job_id, state=state), state=state)


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self, job_id):
        super().__init__(f"no job {job_id!r}; check the id (GET /jobs/<id> reads any state)")


class NoJobAvailable(NotFound):
    code = "queue_empty"


class QueueDisabled(NotFound):
    # 404 like an empty queue: the reference worker treats 404 as "nothing to do"
    code = "queue_disabled"


class WorkerDisabled(Locked):
    code = "worker_disabled"


class WorkerNotFound(NotFound):
    code = "worker_not_found"

    def __init__(self, worker):
        super().__init__(f"no worker {worker!r}: it has not sent a heartbeat within CLIENT_EXPIRY")


class JobNotRunning(Conflict):
    code = "job_not_running"


class NotLeaseHolder(Conflict):
    code = "not_lease_holder"


class JobFinished(Conflict):
    code = "job_finished"


class AttemptMismatch(Conflict):
    code = "attempt_mismatch"


class JobCancelled(Conflict):
    code = "job_cancelled"


class EventsLimit(ApiError):
    status, code = 413, "events_limit"
