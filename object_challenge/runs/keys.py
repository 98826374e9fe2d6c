"""Every Redis key of the runs service, built here and only here.

A run is a job (run id == job id): its state, output and attempts live under the
job queue's keys. Runs adds only what the queue does not know.
"""

from object_challenge.core.keys import key

SERVICE = "runs"

# HASH counters since this Redis began (metrics.py): "finished|<language>|<verdict>", and the
# duration histogram "duration|<language>|<le>" / "duration|<language>|sum"
STATS = key(SERVICE, "stats")


def active(user_id):
    """ZSET run id -> time admitted (ms): the user's runs not known to be final yet (the cap)."""
    return key(SERVICE, "active", user_id)


def cursor(run_id):
    """STRING: the last event id ``POST /check_output/`` returned for this run (the seed's
    one reader, kept on the server; other readers are not affected)."""
    return key(SERVICE, "cursor", run_id)


def cursor_tail(run_id):
    """STRING: output after the last newline ``POST /check_output/`` has seen (the seed answers
    whole lines; a line split over two events is returned once it is complete)."""
    return key(SERVICE, "cursor-tail", run_id)
