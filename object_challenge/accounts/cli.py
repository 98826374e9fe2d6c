"""Operator commands of accounts: ``init``, ``user ...``, ``prefix ...``, ``grant ...``.

Exit codes: 0 done, 1 the operator asked for something impossible (unknown
name, duplicate, ...; the message says what to do), 2 bad usage.
"""

import click
from flask.cli import with_appcontext

from object_challenge.accounts import fixtures, snapshot
from object_challenge.accounts import service as accounts
from object_challenge.accounts.models import ROLES, Prefix, User, UserPrefix
from object_challenge.core.extensions import ensure_indexes


def _fail_on(errors):
    def decorator(func):
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except errors as exc:
                raise click.ClickException(str(exc)) from None

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorator


@click.command("init")
@click.option(
    "--fixtures",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Load fixtures from this directory instead of fixtures/.",
)
@with_appcontext
@_fail_on((fixtures.FixtureError,))
def init_command(directory):
    """Create indexes, load fixtures (idempotent), publish the gateway snapshot."""
    click.echo("creating indexes ...")
    ensure_indexes()
    fixtures.load(directory or fixtures.DEFAULT_DIR, progress=lambda m: click.echo("  " + m))
    version = snapshot.publish()
    click.echo(f"snapshot published to Redis (version {version})")
    for user, problem in snapshot.refused_users():
        click.echo(
            f"refused: user id {user.user_id}: {problem}; its token is refused until you delete it "
            f"(manage.py user delete NAME) or rename it",
            err=True,
        )


@click.group("user")
def user_group():
    """Users and their tokens."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--token", default=None, help="Use this token instead of a generated one.")
@with_appcontext
@_fail_on((accounts.AccountError,))
def user_add(name, role, token):
    """Add a user (NAME: 1-64 ASCII letters, digits, '.', '_', '-'); a generated token is printed once."""
    user, token_used = accounts.add_user(name, role, token)
    click.echo(f"user '{user.name}' (id {user.user_id}, role {user.role}) created")
    if token is None:
        click.echo(f"token: {token_used}")
        click.echo("store it now: it is kept only as a hash and cannot be shown again")


@user_group.command("delete")
@click.argument("name")
@with_appcontext
@_fail_on((accounts.AccountError,))
def user_delete(name):
    """Delete a user and their grants; their token stops working within 2 seconds."""
    user = accounts.delete_user(name)
    click.echo(f"user '{user.name}' (id {user.user_id}) deleted")


@user_group.command("list")
@with_appcontext
def user_list():
    """List users (tokens are never shown)."""
    click.echo(f"{'id':>4}  {'name':<16} {'role':<7} token")
    for user in User.objects.order_by("user_id"):
        state = "set" if user.token_hash else "revoked"
        click.echo(f"{user.user_id:>4}  {user.name:<16} {user.role:<7} {state}")


@user_group.command("revoke-token")
@click.argument("name")
@with_appcontext
@_fail_on((accounts.AccountError,))
def user_revoke(name):
    """Revoke a user's token: the gateway refuses it within 2 seconds."""
    accounts.revoke_token(name)
    click.echo(f"token of '{name}' revoked")


@user_group.command("rotate-token")
@click.argument("name")
@with_appcontext
@_fail_on((accounts.AccountError,))
def user_rotate(name):
    """Give a user a new token (printed once); the old one stops working."""
    _user, token = accounts.rotate_token(name)
    click.echo(f"token: {token}")


@click.group("prefix")
def prefix_group():
    """Bucket-name prefixes."""


@prefix_group.command("add")
@click.argument("prefix")
@with_appcontext
@_fail_on((accounts.AccountError,))
def prefix_add(prefix):
    """Add a prefix that grants can reserve."""
    found = accounts.add_prefix(prefix)
    click.echo(f"prefix '{found.prefix}' (id {found.prefix_id}) added")


@prefix_group.command("remove")
@click.argument("prefix")
@with_appcontext
@_fail_on((accounts.AccountError,))
def prefix_remove(prefix):
    """Remove a prefix and its grants: names starting with it are no longer reserved."""
    grants = accounts.remove_prefix(prefix)
    click.echo(f"prefix '{prefix}' removed (with {grants} grants)")


@prefix_group.command("list")
@with_appcontext
def prefix_list():
    """List prefixes with their grants."""
    users = {u.user_id: u.name for u in User.objects.only("user_id", "name")}
    for prefix in Prefix.objects.order_by("prefix_id"):
        grants = UserPrefix.objects(prefix_id=prefix.prefix_id).order_by("user_id")
        shown = ", ".join(f"{users.get(g.user_id, g.user_id)}:{'allow' if g.is_allowed else 'deny'}" for g in grants)
        click.echo(f"{prefix.prefix_id:>4}  {prefix.prefix:<20} {shown}")


class GrantGroup(click.Group):
    """`grant USER PREFIX --allow|--deny`, plus the `grant remove USER PREFIX` subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["set", *args]
        return super().parse_args(ctx, args)


@click.group("grant", cls=GrantGroup)
def grant_group():
    """Grants: USER PREFIX --allow|--deny, or `remove USER PREFIX`."""


@grant_group.command("set", hidden=True)
@click.argument("user")
@click.argument("prefix")
@click.option("--allow/--deny", "allowed", default=None)
@with_appcontext
@_fail_on((accounts.AccountError,))
def grant_set(user, prefix, allowed):
    if allowed is None:
        raise click.UsageError("say --allow or --deny")
    accounts.set_grant(user, prefix, allowed)
    click.echo(f"'{user}' is now {'allowed' if allowed else 'denied'} on prefix '{prefix}'")


@grant_group.command("remove")
@click.argument("user")
@click.argument("prefix")
@with_appcontext
@_fail_on((accounts.AccountError,))
def grant_remove(user, prefix):
    """Remove a user's grant on a prefix."""
    accounts.remove_grant(user, prefix)
    click.echo(f"grant of '{user}' on '{prefix}' removed")


@click.command("publish-snapshot")
@with_appcontext
def publish_snapshot():
    """Republish tokens and rules to Redis for the gateway."""
    click.echo(f"snapshot version {snapshot.publish()}")


COMMANDS = (init_command, user_group, prefix_group, grant_group, publish_snapshot)
