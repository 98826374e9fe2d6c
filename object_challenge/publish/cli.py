"""Operator commands of the publish service: ``manage.py puzzle ...``."""

import json

import click
from flask.cli import with_appcontext

from object_challenge.accounts.identity import Identity
from object_challenge.core.errors import ApiError
from object_challenge.publish import artist, flush, service
from object_challenge.publish.models import Puzzle


@click.group("puzzle")
def puzzle_group():
    """Puzzles: list, write back to MongoDB, reload into Redis."""


@puzzle_group.command("list")
@with_appcontext
def puzzle_list():
    """Every puzzle with its status and the seq MongoDB has."""
    click.echo(f"{'id':>5}  {'size':<9} {'status':<10} {'seq':>7}  flushed")
    for p in Puzzle.objects.order_by("puzzle_id").only("puzzle_id", "rows", "cols", "status", "seq", "flushed"):
        click.echo(
            f"{p.puzzle_id:>5}  {f'{p.rows}x{p.cols}':<9} {p.status:<10} {p.seq:>7}  "
            f"{p.flushed.isoformat() if p.flushed else '-'}"
        )


@puzzle_group.command("flush")
@with_appcontext
def puzzle_flush():
    """Write every dirty live board back to MongoDB now."""
    click.echo(f"{flush.flush_all()} puzzles written back")


@puzzle_group.command("reload")
@with_appcontext
def puzzle_reload():
    """Reload into Redis every puzzle that Redis lost (after a Redis crash)."""
    click.echo(f"{flush.reload_missing()} puzzles reloaded from MongoDB")


OPERATOR = Identity(0, "operator", "admin")  # who `manage.py puzzle create` acts as


@puzzle_group.command("create")
@click.argument("rows", type=int)
@click.argument("cols", type=int)
@click.option("--table", "table", default="1000x800", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--now", is_flag=True, help="Generate the pieces here instead of queueing a job.")
@with_appcontext
def puzzle_create_command(rows, cols, table, now):
    """Create a puzzle (as POST /newapi/puzzle/ does)."""
    try:
        width, height = (int(v) for v in table.lower().split("x"))
    except ValueError:
        raise click.UsageError("--table is WIDTHxHEIGHT, e.g. 1000x800") from None
    body = {"rows": rows, "cols": cols, "table_width": width, "table_height": height}
    try:
        if now:
            puzzle = service.record_puzzle(body, OPERATOR)
            click.echo(json.dumps(artist.create_pieces(puzzle.puzzle_id)))
        else:
            click.echo(json.dumps(service.create_puzzle(body, OPERATOR)))
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


COMMANDS = (puzzle_group,)
