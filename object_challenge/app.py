"""The app factory: config, stores, error rendering, then each service package.

Every package is imported here by name (no registry of strings): its
``register(app)`` adds its models, CLI commands and periodic tasks, and importing
it registers its worker task modules. ``SERVICES`` says which blueprints each
gunicorn entry point (wsgi.py) serves; `manage.py` builds them all.
"""

from flask import Flask, jsonify, request

from object_challenge import accounts, api, buckets, campaigns, cli, dashboard, jobs, publish, runs
from object_challenge.core import config as config_module
from object_challenge.core import errors, extensions, metrics
from object_challenge.core.health import check_stores
from object_challenge.core.logging import configure_logging

SERVICES = {
    "api": (buckets.bp, api.bp, api.internal_bp, dashboard.bp, dashboard.api_bp),
    "storage": (buckets.storage_bp,),
    "jobs": (jobs.bp, runs.bp, campaigns.bp),  # a run is a job: the runs routes are served beside the queue
    "publish": (publish.bp,),
}
PACKAGES = (accounts, buckets, jobs, publish, runs, campaigns, dashboard)
ALL_MODELS = tuple(model for package in PACKAGES for model in package.MODELS)


def _resolve_config(config):
    if config is None or isinstance(config, str):
        return config_module.load(config)
    if isinstance(config, dict):
        base = config_module.load(config.get("APP_ENV"))
        for key, value in config.items():
            setattr(base, key, value)
        return base
    return config


def create_app(config=None, services=None):
    """Build the app for ``services`` (default: all of them)."""
    cfg = _resolve_config(config)
    cfg.check()
    app = Flask(__name__)
    # no redirects: Werkzeug's 308 for a missing trailing slash or a "//" is HTML and its
    # Location loses the port the client used. A route matches with or without its
    # trailing slash; "//" in a path is a 404 JSON like any unknown path.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.config.from_mapping(cfg.as_dict())
    app.config["SERVICE_NAMES"] = list(services or SERVICES)
    app.json.sort_keys = False
    if cfg.LOG_FORMAT == "json":
        configure_logging(cfg)
    extensions.init_app(app)
    errors.register(app)
    metrics.init_app(app)

    for package in PACKAGES:
        package.register(app)
    for name in app.config["SERVICE_NAMES"]:
        if name not in SERVICES:
            raise SystemExit(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        for blueprint in SERVICES[name]:
            app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz():
        problems = check_stores()
        body = {
            "status": "ok" if not problems else "unavailable",
            "services": app.config["SERVICE_NAMES"],
            "problems": problems,
        }
        return jsonify(body), (200 if not problems else 503)

    @app.after_request
    def options_answer(response):
        # Flask answers OPTIONS itself (200, text/html, empty): 204 with Allow instead
        if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
            response.status_code = 204
            response.headers.pop("Content-Type", None)
        return response

    cli.register(app)
    return app
