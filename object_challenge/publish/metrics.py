"""Scrape-time metrics of the publish service (read from Redis when /metrics is asked).

Token and move outcomes are counted by the scripts themselves (token.lua, move.lua: one
HINCRBY of ``keys.STATS`` per call), so the moves the gateway answers on its own count
the same as the ones the service answers. Requests refused before a script runs (a bad
body: 400; the gateway's per-user limit: ``oc_gateway_refusals_total``) are not in them.
"""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from object_challenge.core.extensions import redis
from object_challenge.publish import keys

SINCE = ", since Redis began"


class PuzzleCollector:
    def collect(self):
        pipe = redis.client.pipeline(transaction=False)
        pipe.scard(keys.LIVE)
        pipe.zcard(keys.DIRTY)
        pipe.hgetall(keys.STATS)
        live, dirty, stats = pipe.execute()
        yield GaugeMetricFamily("oc_puzzles_live", "Puzzles whose board Redis holds", value=live)
        yield GaugeMetricFamily(
            "oc_puzzles_dirty", "Live puzzles with moves not yet written back to MongoDB", value=dirty
        )
        for step, done, help_done in (
            ("moves", "accepted", "Moves applied by move.lua"),
            ("tokens", "granted", "Piece tokens granted by token.lua (a holder asking again included)"),
        ):
            field = step.removesuffix("s") + ":"
            count = int(stats.get(field + done, 0))
            yield CounterMetricFamily(f"oc_publish_{step}_{done}", help_done + SINCE, value=count)
            help_refused = f"{step.capitalize()} refused by the script, by reason{SINCE}"
            refused = CounterMetricFamily(f"oc_publish_{step}_refused", help_refused, labels=["reason"])
            for name, value in sorted(stats.items()):
                if name.startswith(field) and name != field + done:
                    refused.add_metric([name.removeprefix(field)], int(value))
            yield refused
