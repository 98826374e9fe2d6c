"""Job-queue fixtures: short leases, a live HTTP server for worker processes."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(config):
    # short leases so that expiry is observable in a test; the scheduler is not running
    config.JOB_LEASE_SECONDS = 1.0
    config.JOB_MAX_ATTEMPTS = 3
    config.CLIENT_EXPIRY = 2
    return config


@pytest.fixture
def live_server(app):
    """The app on a free port in a thread (worker processes talk HTTP to it)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}/newapi"
    yield server
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def spawn_worker(tmp_path):
    """Start ``python -m object_challenge.jobs.worker ...`` processes; all stopped afterwards.

    Each process gets ``.log`` (its output file) and ``.worker_id``.
    """
    processes = []

    def spawn(url, *args, token="token_worker", worker_id=None):
        worker_id = worker_id or f"test-worker-{len(processes) + 1}"
        log = tmp_path / f"{worker_id}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "object_challenge.jobs.worker",
                "--url",
                url,
                "--token",
                token,
                "--worker-id",
                worker_id,
                "--poll-interval",
                "0.05",
                *args,
            ],
            cwd=ROOT,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )
        process.log, process.worker_id = log, worker_id
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        print(f"--- {process.worker_id} ---\n{process.log.read_text(errors='replace')}")  # shown on failure


@pytest.fixture
def redis(app):
    # The app's Redis client without holding an app context open: a context held for
    # the whole test would be shared by every test-client request (and so would `g`).
    return app.extensions["redis"]
