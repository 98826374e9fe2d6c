#!/usr/bin/env python
"""Operator entry point: ``python manage.py runserver | shell | init | user ... | ...``.

Only the commands the README and docs/operations.md document are listed: Flask's
own options (``--app``, ``--env-file``, ``--debug``) and its ``run``/``routes``
commands are not (the app is always ``object_challenge.app:create_app``). A store
that does not answer stops any command with one line (exit 1), no traceback.
"""

import code
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext
from werkzeug.serving import run_simple

from object_challenge.app import create_app
from object_challenge.core.errors import store_of

FLASK_OPTIONS = ("env_file", "app", "debug")


def _create_app():
    return create_app()


class OperatorGroup(FlaskGroup):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params = [p for p in self.params if p.name not in FLASK_OPTIONS]
        self._loaded_plugin_commands = True  # no plugin commands (flask-shell-ipython's shell is ours below)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise  # the command said what happened (e.g. "redis is not answering ...; nothing was changed")
        except Exception as exc:
            store = store_of(exc)
            if store is None:
                raise
            detail = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            click.echo(f"error: {store} is not answering ({detail}); the command stopped", err=True)
            sys.exit(1)


@click.group(
    cls=OperatorGroup, create_app=_create_app, add_default_commands=False, add_version_option=False, load_dotenv=False
)
def cli():
    """object_challenge operator commands."""


@cli.command("runserver")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def runserver(host, port):
    """Run all services in one development server (no gateway)."""
    # not app.run(): under a Flask CLI command it only says "Ignoring a call to app.run()"
    run_simple(host, port, create_app(), use_reloader=False, use_debugger=False, threaded=True)


@cli.command("shell")
@click.option("-c", "command", default=None, help="Run this Python code and exit (no banner).")
@with_appcontext
def shell(command):
    """A Python shell with the models, db, mongo and redis preloaded (IPython on a terminal).

    `-c CODE` runs CODE; code piped on stdin runs without a banner or prompt.
    """
    context = {"app": current_app._get_current_object()}
    context.update(current_app.make_shell_context())
    if command is not None:
        exec(compile(command, "<shell -c>", "exec"), context)
        return
    if not sys.stdin.isatty():
        exec(compile(sys.stdin.read(), "<stdin>", "exec"), context)
        return
    try:
        from IPython import start_ipython  # noqa: PLC0415 -- optional (requirements/dev.txt): code.interact without it
    except ImportError:
        code.interact(local=context)
        return
    start_ipython(argv=[], user_ns=context)


if __name__ == "__main__":
    cli(obj=ScriptInfo(create_app=_create_app, load_dotenv_defaults=False))
