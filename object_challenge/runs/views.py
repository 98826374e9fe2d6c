"""HTTP routes of the runs service, under ``/newapi`` (issue 14), and the seed's three.

Served by the jobs service's gunicorn (``SERVICES["jobs"]``): a run is a job. The
live output stream ``GET /newapi/runs/{id}/events`` is the gateway's job events
stream (nginx maps it to the job's stream; see docs/runs.md).
"""

from flask import Blueprint, current_app, jsonify, request

from object_challenge.accounts.identity import authenticated, current_identity
from object_challenge.core.bodies import json_body
from object_challenge.core.errors import BadRequest
from object_challenge.runs import languages, service
from object_challenge.runs.service import InvalidRunError, runs

bp = Blueprint("runs", __name__, url_prefix="/newapi")
OUTPUT_LIMIT_MAX = 1000


def _body():
    """The JSON body; the runs routes accept RUNS_BODY_LIMIT_BYTES (the other routes less)."""
    request.max_content_length = current_app.config["RUNS_BODY_LIMIT_BYTES"]
    return json_body(refuse=_invalid_body, no_body="send a JSON object")


def _invalid_body(message):
    return InvalidRunError(message, field="body")


def _zip(filename, data):
    response = current_app.response_class(data, mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/runs/languages")
@authenticated
def list_languages():
    return jsonify({"languages": languages.describe()})


@bp.post("/runs", strict_slashes=False)
@authenticated
def create_run():
    return jsonify(runs().create(_body(), current_identity())), 202


@bp.get("/runs/<run_id>")
@authenticated
def get_run(run_id):
    service_ = runs()
    return jsonify(service_.describe(service_.job(run_id, current_identity())))


@bp.get("/runs/<run_id>/output")
@authenticated
def get_output(run_id):
    limit = request.args.get("limit", 100, type=int)
    if not 1 <= limit <= OUTPUT_LIMIT_MAX:
        raise BadRequest(f"limit is a whole number from 1 to {OUTPUT_LIMIT_MAX}", code="bad_limit")
    job = runs().job(run_id, current_identity())
    return jsonify(service.read_output(job, request.args.get("after", ""), limit))


@bp.post("/runs/<run_id>/cancel")
@authenticated
def cancel_run(run_id):
    service_ = runs()
    return jsonify(service_.cancel(service_.job(run_id, current_identity()))), 202


@bp.post("/runs/download")
@authenticated
def download():
    return _zip(*service.download(_body()))


# -- the seed's routes (learn's widget blueprint), same rules ------------------------------
@bp.post("/run_program/")
@authenticated
def seed_run_program():
    created = runs().create(service.seed_body(_body()), current_identity())
    return jsonify({"identifier": created["run_id"], "run_id": created["run_id"]})


@bp.post("/check_output/")
@authenticated
def seed_check_output():
    body = _body()
    identifier = body.get("identifier") if isinstance(body, dict) else None
    if not isinstance(identifier, str) or not identifier:
        raise InvalidRunError('send {"identifier": "<the id /run_program/ returned>"}', field="identifier")
    service_ = runs()
    job = service_.job(identifier, current_identity())
    return jsonify(service_.check_output(job, service.read_events))


@bp.post("/download/")
@authenticated
def seed_download():
    return _zip(*service.seed_download(_body()))
