"""Operator commands: ``manage.py campaign create|pass|status|retry|export``.

They run inside the app (the same MongoDB and Redis as the services), so they call the service
directly; ``status --watch`` draws a progress bar until the pass is done.
"""

import json
import sys
import time
from types import SimpleNamespace

import click
from flask.cli import with_appcontext
from tqdm import tqdm

from object_challenge.campaigns import export, records, service
from object_challenge.core.errors import ApiError


def _fail(exc):
    raise click.ClickException(f"{exc.code}: {exc.message}")


def _campaign(name):
    try:
        return service.by_name(name)
    except ApiError as exc:
        _fail(exc)


@click.group("campaign")
def campaign_group():
    """Campaigns: range-batched sweeps of the player API (issue 15)."""


@campaign_group.command("create")
@click.argument("name")
@click.option("--start", type=int, default=1, show_default=True)
@click.option("--end", type=int, required=True)
@click.option("--batch-size", type=int, default=100, show_default=True)
@click.option("--window", type=int, default=10, show_default=True)
@click.option("--max-attempts", type=int, default=3, show_default=True)
@click.option("--threshold", type=int, default=50_000, show_default=True, help="growth: ids from the end")
@click.option("--step", type=int, default=200_000, show_default=True, help="growth: ids added")
@with_appcontext
def campaign_create(name, start, end, batch_size, window, max_attempts, threshold, step):
    """Create a campaign over ids START..END."""
    body = {
        "name": name,
        "source": "players",
        "range": {"start": start, "end": end},
        "batch_size": batch_size,
        "window": window,
        "max_attempts": max_attempts,
        "growth": {"threshold": threshold, "step": step},
    }
    try:
        doc = service.create(body, SimpleNamespace(user_id=None, name="manage.py"))
    except ApiError as exc:
        _fail(exc)
    click.echo(json.dumps(service.progress(doc), indent=2))


@campaign_group.command("pass")
@click.argument("name")
@with_appcontext
def campaign_pass(name):
    """Start the next pass of campaign NAME."""
    try:
        click.echo(json.dumps(service.start_pass(_campaign(name)["_id"])))
    except ApiError as exc:
        _fail(exc)


@campaign_group.command("retry")
@click.argument("name")
@with_appcontext
def campaign_retry(name):
    """Queue the failed batches of the current pass again."""
    click.echo(json.dumps(service.retry_failed(_campaign(name)["_id"])))


def _line(p):
    b = p["batches"]
    return (
        f"pass {p['pass']} {p['state']}: batches {b['done']}/{b['total']} done, {b['queued']} queued, "
        f"{b['running']} running, {b['failed']} failed; {p['players_found']} players, "
        f"max id {p['max_id_found']}, {p['ids_per_second']} ids/s, eta {p['eta_s']} s"
    )


@campaign_group.command("status")
@click.argument("name")
@click.option("--watch", is_flag=True, help="Redraw a progress bar until the pass ends.")
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The GET /campaigns/{id} body.")
@with_appcontext
def campaign_status(name, watch, interval, as_json):
    """Progress of campaign NAME (its current or last pass)."""
    doc = _campaign(name)
    if not watch:
        p = service.progress(doc)
        click.echo(json.dumps(p, indent=2) if as_json else _line(p))
        return
    p = service.progress(doc)
    with tqdm(total=p["batches"]["total"], unit="batch", desc=f"{name} pass {p['pass']}", file=sys.stdout) as bar:
        while True:
            done = p["batches"]["done"] + p["batches"]["failed"]
            bar.update(done - bar.n)
            bar.set_postfix(
                players=p["players_found"], ids_s=p["ids_per_second"], eta_s=p["eta_s"], failed=p["batches"]["failed"]
            )
            if p["state"] not in ("running", "paused"):
                break
            time.sleep(interval)
            p = service.progress(service.get(doc["_id"]), with_failed=False)
    click.echo(_line(p))
    for g in p["growth"]:
        click.echo(f"growth after pass {g['pass']}: range end {g['from']} -> {g['to']}")


@campaign_group.command("export")
@click.argument("name")
@click.option("--pass", "pass_no", type=int, required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--index", default=None, help="Elasticsearch index (default oc-campaign-<name>).")
@with_appcontext
def campaign_export(name, pass_no, out_path, index):
    """Write a pass's records as Elasticsearch _bulk NDJSON."""
    doc = _campaign(name)
    db = service.db()
    total = records.count_records(db, doc["_id"], pass_no)
    with open(out_path, "w", encoding="utf-8") as out, tqdm(total=total, unit="rec", file=sys.stderr) as bar:
        written = export.export_pass(
            db, doc["_id"], pass_no, out, index or export.index_name(name), progress=lambda n: bar.update(n - bar.n)
        )
    click.echo(f"{written} records of pass {pass_no} written to {out_path}")


COMMANDS = (campaign_group,)
