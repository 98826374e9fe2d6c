"""The app factory: config, stores, error rendering, then one blueprint set per service."""
import importlib
import json
import logging
import sys

from flask import Flask, jsonify

from object_challenge import config as config_module
from object_challenge import errors, extensions

# service name -> blueprints ("module:attribute"); the gunicorn entry points in
# wsgi.py build one app per service, `manage.py` builds them all.
SERVICES = {
    "api": ["object_challenge.buckets.views:bp", "object_challenge.api.views:bp",
            "object_challenge.api.views:internal_bp"],
    "storage": ["object_challenge.buckets.views:storage_bp"],
    "jobs": ["object_challenge.jobs.views:bp"],
    "publish": ["object_challenge.publish.views:bp"],
}


def _load(path):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _resolve_config(config):
    if config is None or isinstance(config, str):
        return config_module.load(config)
    if isinstance(config, dict):
        base = config_module.load(config.get("APP_ENV"))
        for key, value in config.items():
            setattr(base, key, value)
        return base
    return config


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {"ts": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(cfg):
    handler = logging.StreamHandler(sys.stderr)
    if cfg.LOG_FORMAT == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.LOG_LEVEL)


def create_app(config=None, services=None):
    """Build the app for ``services`` (default: all of them)."""
    cfg = _resolve_config(config)
    cfg.check()
    app = Flask(__name__)
    app.config.from_mapping(cfg.as_dict())
    app.config["SERVICE_NAMES"] = list(services or SERVICES)
    app.json.sort_keys = False
    if cfg.LOG_FORMAT == "json":
        configure_logging(cfg)
    extensions.init_app(app)
    errors.register(app)

    for name in app.config["SERVICE_NAMES"]:
        if name not in SERVICES:
            raise SystemExit(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        for path in SERVICES[name]:
            app.register_blueprint(_load(path))

    @app.get("/healthz")
    def healthz():
        from object_challenge.health import check_stores

        problems = check_stores()
        body = {"status": "ok" if not problems else "unavailable",
                "services": app.config["SERVICE_NAMES"], "problems": problems}
        return jsonify(body), (200 if not problems else 503)

    from object_challenge.cli import register_commands

    register_commands(app)
    return app
