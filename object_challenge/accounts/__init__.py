"""Accounts: users, tokens, roles, prefix grants, the caller's identity and the snapshot the gateway follows.

models.py   User, Prefix, UserPrefix          service.py  the operations the CLI calls
identity.py who is calling (gateway headers)  snapshot.py the versioned snapshot for the gateway
fixtures.py the seed data `init` loads        cli.py      init, user, prefix, grant
"""

from object_challenge.accounts import cli, snapshot
from object_challenge.accounts.models import Prefix, User, UserPrefix

MODELS = (User, Prefix, UserPrefix)


def register(app):
    app.extensions["oc.models"].extend(MODELS)
    app.extensions["oc.schedule"].append((snapshot.republish_if_missing, 1.0))
    for command in cli.COMMANDS:
        app.cli.add_command(command)
