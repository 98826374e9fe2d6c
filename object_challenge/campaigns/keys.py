"""Every Redis key of the campaigns service, built here and only here (``oc:campaigns:<thing>:<id>``)."""

import hashlib

from object_challenge.core.keys import key

SERVICE = "campaigns"

# HASH counters since this Redis began (metrics.py): "ids_ingested", and the ingest time
# histogram "ingest|<le>" / "ingest|sum"
STATS = key(SERVICE, "stats")


def rate(api_key):
    """STRING: the theoretical arrival time (µs, Redis clock) of an API key's token bucket (take.lua).

    Named by a digest of the key, so the API keys themselves never appear in Redis key names.
    """
    return key(SERVICE, "rate", hashlib.sha256(api_key.encode()).hexdigest()[:16])
