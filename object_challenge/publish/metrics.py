"""Scrape-time gauges of the publish service."""

from prometheus_client.core import GaugeMetricFamily

from object_challenge.core.extensions import redis
from object_challenge.publish import keys


class PuzzleCollector:
    def collect(self):
        yield GaugeMetricFamily("oc_puzzles_live", "Puzzles whose board Redis holds", value=redis.scard(keys.LIVE))
        yield GaugeMetricFamily(
            "oc_puzzles_dirty", "Live puzzles with moves not yet written back to MongoDB", value=redis.zcard(keys.DIRTY)
        )
