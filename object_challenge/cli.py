"""The operator commands every package does not own: ops (backup, restore,
scheduler) and the `manage.py shell` context. Package commands are added by each
package's ``register(app)``."""

from object_challenge import ops
from object_challenge.accounts.models import ROLES, Prefix, User, UserPrefix
from object_challenge.buckets.models import Bucket
from object_challenge.core import extensions
from object_challenge.core.counters import next_id, raise_counter
from object_challenge.publish.models import Piece, Puzzle

SHELL_NAMES = {
    "Bucket": Bucket,
    "Piece": Piece,
    "Prefix": Prefix,
    "Puzzle": Puzzle,
    "ROLES": ROLES,
    "User": User,
    "UserPrefix": UserPrefix,
    "next_id": next_id,
    "raise_counter": raise_counter,
}


def _shell_context():
    return {**SHELL_NAMES, "db": extensions.db, "mongo": extensions.mongo, "redis": extensions.redis.client}


def register(app):
    app.shell_context_processor(_shell_context)
    for command in ops.COMMANDS:
        app.cli.add_command(command)
    app.extensions["oc.schedule"].extend(ops.SCHEDULE)
