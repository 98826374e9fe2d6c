"""Gunicorn settings for the service containers (``gunicorn -c deployment/gunicorn.conf.py``).

The bind address and the entry point come from the command line (see
docker-compose.yml); everything else is here. Settings are read through
object_challenge.core.config, the one place that reads the environment:

- workers: ``GUNICORN_WORKERS``, or 2 x the CPUs this process may run on, plus one;
- logs: with ``LOG_FORMAT=json`` (always in production) gunicorn's error and access
  logs are JSON lines on stderr/stdout, like the app's own (core/logging.py: JsonFormatter).
"""

import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from object_challenge.core.config import load  # noqa: E402
from object_challenge.core.logging import JsonFormatter  # noqa: E402

settings = load()


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))  # honours cpusets (docker --cpuset-cpus)
    except AttributeError:
        return os.cpu_count() or 1


workers = settings.GUNICORN_WORKERS or 2 * cpu_count() + 1
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 30
keepalive = 5  # the gateway keeps upstream connections open
max_requests = 10000  # recycle workers now and then, spread out by the jitter
max_requests_jitter = 1000
control_socket_disable = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
errorlog = "-"
loglevel = settings.LOG_LEVEL.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'


class AccessJsonFormatter(JsonFormatter):
    """An access line as fields, not as a sentence: gunicorn passes its atoms as the args."""

    def format(self, record):
        atoms = record.args if isinstance(record.args, dict) else {}
        entry = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "remote_addr": atoms.get("h"),
            "method": atoms.get("m"),
            "path": atoms.get("U"),
            "query": atoms.get("q") or None,
            "status": _int(atoms.get("s")),
            "bytes": _int(atoms.get("B")),
            "duration_ms": _int(atoms.get("M")),
            "request_id": atoms.get("{x-request-id}i") if atoms.get("{x-request-id}i") != "-" else None,
            "user_agent": atoms.get("a"),
        }
        return json.dumps(entry)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


if settings.LOG_FORMAT == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}, "access_json": {"()": AccessJsonFormatter}},
        "handlers": {
            "error": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access_json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": settings.LOG_LEVEL, "handlers": ["error"]},
        "loggers": {
            "gunicorn.error": {"level": settings.LOG_LEVEL, "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
    logging.captureWarnings(True)


# prometheus-client in multiprocess mode (core/metrics.py): every worker writes its values
# to files in PROMETHEUS_MULTIPROC_DIR, which must be empty when the service starts
def on_starting(server):
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for leftover in path.glob("*.db"):
            leftover.unlink(missing_ok=True)


def child_exit(server, worker):
    if settings.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess  # noqa: PLC0415 -- only where metrics are on

        multiprocess.mark_process_dead(worker.pid, settings.PROMETHEUS_MULTIPROC_DIR)
