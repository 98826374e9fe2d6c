"""Redis key names, built in exactly one place (Lua twin: lua/oc/keys.lua).

Names are ``oc:<service>:<thing>[:<id>]``. Services that own more keys keep
their builders next to their scripts (``jobs/keys.py``, ``publish/keys.py``) and
use the ``key`` helper below.
"""

PREFIX = "oc"


def key(service, thing, *ids):
    return ":".join((PREFIX, service, thing, *(str(i) for i in ids)))


# the snapshot the gateway follows (see docs/architecture.md)
GW_TOKENS = key("gw", "tokens")
GW_RULES = key("gw", "rules")
GW_VERSION = key("gw", "version")
