"""Run verdicts and durations, counted by the jobs service when a worker posts a run's result.

Runs execute in worker processes (``manage.py worker``), which no one scrapes; their result
reaches the jobs service (``PATCH /newapi/jobs/<id>/completed``), which counts it in the
Redis hash ``keys.STATS`` (one pipeline per finished run); ``RunCollector`` reads it when
the jobs service's /metrics is asked. A run whose every lease ran out posts no result: it is
in ``oc_jobs_attempts_exhausted_total``. Labels are bounded: a language the service does not
know or a verdict the sandbox does not name is counted as ``other``.
"""

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from object_challenge.core.extensions import redis
from object_challenge.core.metrics import count_observation, histogram_buckets
from object_challenge.jobs.store import FINAL_STATES
from object_challenge.runs import keys
from object_challenge.runs.execute import VERDICTS
from object_challenge.runs.languages import LANGUAGES
from object_challenge.runs.service import MODULE, task_outcome

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def count_completed(job):
    """The jobs service's completion hook: count ``job`` if it is a run that has ended."""
    tasks = job.get("tasks") or []
    if len(tasks) != 1 or not isinstance(tasks[0], dict) or tasks[0].get("module") != MODULE:
        return
    if job.get("state") not in FINAL_STATES:
        return  # a failed attempt that is retried: counted when the run ends
    language = (tasks[0].get("data") or {}).get("language")
    language = language if language in LANGUAGES else "other"
    outcome = task_outcome(job) or {}
    if job.get("state") == "cancelled" or outcome.get("cancelled"):
        verdict = "cancelled"
    else:
        verdict = outcome.get("verdict") or "internal_error"  # the task raised: no verdict
        verdict = verdict if verdict in VERDICTS else "other"
    pipe = redis.client.pipeline(transaction=False)
    pipe.hincrby(keys.STATS, f"finished|{language}|{verdict}", 1)
    stages = outcome.get("stages")
    if isinstance(stages, list) and stages:
        walls = [s.get("wall_ms") for s in stages if isinstance(s, dict)]
        seconds = sum(w for w in walls if isinstance(w, int | float)) / 1000
        count_observation(pipe, keys.STATS, f"duration|{language}", seconds, BUCKETS)
    pipe.execute()


class RunCollector:
    """oc_runs_finished_total{language, verdict}, oc_runs_duration_seconds{language}."""

    def collect(self):
        stats = redis.client.hgetall(keys.STATS)
        finished = CounterMetricFamily(
            "oc_runs_finished",
            "Runs whose result a worker posted, by language and verdict (cancelled: stopped by a cancel)"
            ", since Redis began",
            labels=["language", "verdict"],
        )
        languages = set(LANGUAGES)
        for name, value in sorted(stats.items()):
            parts = name.split("|")
            if parts[0] == "finished" and len(parts) == 3:
                finished.add_metric(parts[1:], int(value))
            elif parts[0] == "duration" and len(parts) == 3:
                languages.add(parts[1])
        yield finished
        duration = HistogramMetricFamily(
            "oc_runs_duration_seconds",
            "Sandbox wall time of a finished run (build and run stages added up), by language, since Redis began",
            labels=["language"],
        )
        for language in sorted(languages):
            buckets, total = histogram_buckets(stats, f"duration|{language}", BUCKETS)
            duration.add_metric([language], buckets, total)
        yield duration
