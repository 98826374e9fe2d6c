"""Scrape-time gauges of the campaigns (read from their documents when /metrics is asked)."""

from prometheus_client.core import GaugeMetricFamily

from object_challenge.campaigns import service, store


class CampaignCollector:
    """Campaigns by state; batches by state and ids done, summed over every campaign."""

    def collect(self):
        by_state = GaugeMetricFamily("oc_campaigns", "Campaigns by state", labels=["state"])
        batches = GaugeMetricFamily("oc_campaign_batches", "Batches of the current passes by state", labels=["state"])
        ids_done = GaugeMetricFamily("oc_campaign_ids_done", "Ids swept in the current passes", labels=["campaign"])
        states, counts = {}, {"total": 0, "done": 0, "failed": 0}
        fields = {"name": 1, "state": 1, "batches": 1, "current.ids_done": 1}
        for doc in store.campaigns(service.db()).find({}, fields):
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
