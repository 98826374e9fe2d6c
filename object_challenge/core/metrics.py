"""Prometheus metrics of a service, at ``GET /metrics`` on the service's own address.

The gateway never routes ``/metrics`` (its public port answers 404), so only what can
reach a service's address (Prometheus on the internal network) can scrape it.

Under gunicorn every worker is a process: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty
directory per service, made by `make run` and the compose file) prometheus-client keeps
each process's values in files there and ``/metrics`` adds them up
(``MultiProcessCollector``). Without it (tests, ``manage.py runserver``) the values live
in the process. Only counters and histograms are recorded per request, so a worker that
exits leaves nothing to clean up.

Packages add scrape-time gauges (queue depth, live puzzles, ...) by appending a
collector (an object with ``collect()``) to ``app.extensions["oc.metrics"]``.

Counts that must not depend on one process (runs, campaign ingest, moves) are kept in a
Redis hash and read by such a collector: ``count_observation`` and ``histogram_buckets``
keep a histogram there. (A prometheus-client value made at import would also make every
``manage.py`` command write into ``PROMETHEUS_MULTIPROC_DIR``, which only gunicorn creates.)
"""

import time

from flask import current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "oc_http_requests_total",
    "HTTP requests answered, by service, endpoint (the route rule), method and status",
    ["service", "endpoint", "method", "status"],
)
LATENCY = Histogram(
    "oc_http_request_duration_seconds",
    "Time to answer a request in the service, by service and endpoint",
    ["service", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def count_observation(pipe, key, field, value, buckets):
    """Queue on ``pipe`` one observation of the histogram ``field`` kept in the Redis hash
    ``key``: fields ``<field>|<le>`` (per bucket, not cumulative) and ``<field>|sum``."""
    le = next((str(float(b)) for b in buckets if value <= b), "+Inf")
    pipe.hincrby(key, f"{field}|{le}", 1)
    pipe.hincrbyfloat(key, f"{field}|sum", value)


def histogram_buckets(stats, field, buckets):
    """``(buckets, sum)`` for ``HistogramMetricFamily.add_metric`` from a hash ``count_observation``
    wrote (``stats``: its HGETALL): cumulative counts per ``le``, ending with ``+Inf``."""
    out, total = [], 0
    for le in [str(float(b)) for b in buckets] + ["+Inf"]:
        total += int(stats.get(f"{field}|{le}", 0))
        out.append((le, total))
    return out, float(stats.get(f"{field}|sum", 0))


def _start():
    g.oc_started = time.perf_counter()


def _record(response):
    started = g.pop("oc_started", None)
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    if started is None or rule == "/metrics":
        return response
    service = current_app.config["OC_METRICS_SERVICE"]
    REQUESTS.labels(service, rule, request.method, str(response.status_code)).inc()
    LATENCY.labels(service, rule).observe(time.perf_counter() - started)
    return response


def _metrics():
    directory = current_app.config.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    for collector in current_app.extensions["oc.metrics"]:
        extra.register(collector)
    body = text + generate_latest(extra)
    return current_app.response_class(body, mimetype=None, headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app):
    app.extensions["oc.metrics"] = []
    app.config["OC_METRICS_SERVICE"] = ",".join(app.config["SERVICE_NAMES"])
    app.before_request(_start)
    app.after_request(_record)
    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
