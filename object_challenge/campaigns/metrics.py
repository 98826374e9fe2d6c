"""Campaign metrics, read when the jobs service's /metrics is asked: gauges from the campaign
documents, and the ingest (``POST .../batches/<n>/results``), which ``count_ingest`` keeps in
the Redis hash ``keys.STATS`` (one pipeline per batch ingested)."""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from object_challenge.campaigns import keys, store
from object_challenge.core.extensions import mongo, redis
from object_challenge.core.metrics import count_observation, histogram_buckets

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def count_ingest(ids, seconds):
    """One batch ingested: ``ids`` swept, ``seconds`` taken (a repeated delivery is not counted)."""
    pipe = redis.client.pipeline(transaction=False)
    pipe.hincrby(keys.STATS, "ids_ingested", ids)
    count_observation(pipe, keys.STATS, "ingest", seconds, BUCKETS)
    pipe.execute()


class CampaignCollector:
    """Campaigns by state; batches by state and ids done, summed over every campaign."""

    def collect(self):
        by_state = GaugeMetricFamily("oc_campaigns", "Campaigns by state", labels=["state"])
        batches = GaugeMetricFamily("oc_campaign_batches", "Batches of the current passes by state", labels=["state"])
        ids_done = GaugeMetricFamily("oc_campaign_ids_done", "Ids swept in the current passes", labels=["campaign"])
        states, counts = {}, {"total": 0, "done": 0, "failed": 0}
        fields = {"name": 1, "state": 1, "batches": 1, "current.ids_done": 1}
        for doc in store.campaigns(mongo.db).find({}, fields):
            states[doc.get("state", "unknown")] = states.get(doc.get("state", "unknown"), 0) + 1
            for key in counts:
                counts[key] += (doc.get("batches") or {}).get(key, 0)
            ids_done.add_metric([doc.get("name", "")], (doc.get("current") or {}).get("ids_done", 0))
        for state, n in sorted(states.items()):
            by_state.add_metric([state], n)
        for state, n in counts.items():
            batches.add_metric([state], n)
        yield by_state
        yield batches
        yield ids_done
        stats = redis.client.hgetall(keys.STATS)
        yield CounterMetricFamily(
            "oc_campaign_ids_ingested",
            "Ids of batches ingested (each batch once, however often it is delivered), since Redis began;"
            " rate() is ids/s",
            value=int(stats.get("ids_ingested", 0)),
        )
        ingest = HistogramMetricFamily(
            "oc_campaign_ingest_duration_seconds",
            "Time to ingest one batch's results (the records' bulk insert, the batch and campaign updates)",
        )
        ingest.add_metric([], *histogram_buckets(stats, "ingest", BUCKETS))
        yield ingest
