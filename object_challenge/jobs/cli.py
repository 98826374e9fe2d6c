"""Operator commands of the job queue: ``worker`` and ``jobs ...``."""

import json
import logging

import click
from flask import current_app
from flask.cli import with_appcontext

from object_challenge.jobs import worker as worker_module
from object_challenge.jobs.service import jobs


@click.command("worker")
@click.option("--queue", default=None, help="Queue to work on (default REDIS_QUEUE_NAME).")
@click.option("--url", default=None, help="Base URL of the queue (default: the gateway's /newapi).")
@click.option("--token", default=None, help="Worker token (default WORKER_TOKEN, else token_worker).")
@click.option("--worker-id", default=None, help="Default: hostname-pid-random.")
@click.option("--poll-interval", type=float, default=1.0, show_default=True)
@click.option("--heartbeat-interval", type=float, default=5.0, show_default=True)
@click.option("--tasks", "task_modules", multiple=True, help="Extra task module to import.")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--stream-logs", is_flag=True, help="Post each task's log records as job events.")
@click.option(
    "--modules", default=None, help="Comma-separated task modules to declare (default: every one whose check passes)."
)
@with_appcontext
def worker_command(
    queue, url, token, worker_id, poll_interval, heartbeat_interval, task_modules, burst, stream_logs, modules
):
    """Poll a queue over HTTP and run its jobs; SIGTERM finishes the current job, then exits."""
    cfg = current_app.config
    url = url or f"http://{cfg['GATEWAY_HOST']}:{cfg['GATEWAY_PORT']}/newapi"
    token = token or cfg.get("WORKER_TOKEN") or "token_worker"
    logging.basicConfig(level=cfg.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker_module.run_worker(
        url,
        token,
        queue or cfg["REDIS_QUEUE_NAME"],
        worker_id,
        poll_interval,
        heartbeat_interval,
        task_modules,
        burst,
        stream_logs,
        modules=[m.strip() for m in modules.split(",") if m.strip()] if modules else None,
    )


@click.group("jobs")
def jobs_group():
    """The job queue: state, and the scheduler's step by hand."""


@jobs_group.command("tick")
@with_appcontext
def jobs_tick():
    """Requeue expired leases, expire workers, record finished jobs (what the scheduler does)."""
    events, workers_gone = jobs().tick()
    for event in events:
        click.echo(f"job {event['id']}: lease of {event['worker'] or '(unnamed)'} ended, {event['outcome']}")
    click.echo(f"{len(events)} leases ended, {workers_gone} workers expired")


@jobs_group.command("recover")
@with_appcontext
def jobs_recover():
    """After a Redis loss: queue again the queued and running jobs MongoDB has (oldest first)."""
    recovered = jobs().recover()
    for job_id in recovered:
        click.echo(f"job {job_id} queued again")
    click.echo(f"{len(recovered)} jobs recovered")


@jobs_group.command("stats")
@with_appcontext
def jobs_stats():
    """Live counts from Redis (waiting per queue, running), finished counts from MongoDB, as JSON."""
    service = jobs()
    names = sorted(set(service.queue.queues()) | {current_app.config["REDIS_QUEUE_NAME"]})
    finished, changed = service.queue.unrecorded()
    out = {
        "queues": {
            name: {"waiting": service.queue.length(name), "disabled": service.queue.attributes(name)["disabled"]}
            for name in names
        },
        "running": service.queue.running(),
        "completed": service.store.count("completed"),
        "failed": service.store.count("failed"),
        "cancelled": service.store.count("cancelled"),
        "unrecorded": {"finished": finished, "changed": changed},
    }
    click.echo(json.dumps(out, indent=2))


COMMANDS = (worker_command, jobs_group)
