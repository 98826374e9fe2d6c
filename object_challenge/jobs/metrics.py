"""Scrape-time gauges of the job queue (read from Redis and MongoDB when /metrics is asked)."""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from object_challenge.jobs import keys
from object_challenge.jobs.service import jobs


class QueueCollector:
    """Queue depth and running jobs per queue, live workers, job documents per state."""

    def collect(self):
        service = jobs()
        queue = service.queue
        depth = GaugeMetricFamily("oc_jobs_queue_depth", "Jobs waiting in a queue", labels=["queue"])
        running = GaugeMetricFamily("oc_jobs_running", "Jobs running (leased) per queue", labels=["queue"])
        stranded = GaugeMetricFamily(
            "oc_jobs_stranded", "Waiting jobs needing a module no live worker declared", labels=["queue"]
        )
        names = queue.queues()
        lives = queue.live_many(queue.redis.zrange(keys.LEASES, 0, -1))
        for name in names:
            depth.add_metric([name], queue.length(name))
            running.add_metric([name], sum(1 for live in lives.values() if live.get("queue") == name))
            stranded.add_metric([name], queue.stranded(name))
        yield depth
        yield running
        yield stranded
        now = queue.now_ms()
        yield GaugeMetricFamily(
            "oc_jobs_workers_live",
            "Workers with a heartbeat within CLIENT_EXPIRY",
            value=queue.redis.zcount(keys.WORKERS, now, "+inf"),
        )
        stats = queue.redis.hgetall(keys.STATS)
        for name, help_text in (
            ("leases_expired", "Leases that ran out (the job requeued, failed or cancelled)"),
            ("attempts_exhausted", "Jobs failed because a lease ran out on their last attempt"),
            ("events_posted", "Job events accepted from workers"),
        ):
            yield CounterMetricFamily(
                f"oc_jobs_{name}", help_text + ", since Redis began", value=int(stats.get(name, 0))
            )
        documents = GaugeMetricFamily("oc_jobs_documents", "Job documents in MongoDB per state", labels=["state"])
        for state in ("queued", "running", "completed", "failed"):
            documents.add_metric([state], service.store.count(state))
        yield documents
