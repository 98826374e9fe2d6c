#!/usr/bin/env python
"""Operator entry point: ``python manage.py runserver | shell | init | user ... | ...``."""

import click
from flask.cli import FlaskGroup

from object_challenge.app import create_app


def _create_app():
    return create_app()


@click.group(
    cls=FlaskGroup, create_app=_create_app, add_default_commands=True, add_version_option=False, load_dotenv=False
)
def cli():
    """object_challenge operator commands."""


@cli.command("runserver")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def runserver(host, port):
    """Run all services in one development server (no gateway)."""
    create_app().run(host=host, port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    cli()
