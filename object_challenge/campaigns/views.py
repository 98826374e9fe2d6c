"""HTTP routes of the campaigns service, under ``/newapi/campaigns`` (served by the jobs service).

Admins create campaigns, start passes, pause and retry; anyone with a token reads progress and
players; workers (and admins) post a batch's results, which are ingested inside the request
(one bulk insert of at most 100 records: see docs/campaigns.md for why not off the request path).
"""

from flask import Blueprint, jsonify, request

from object_challenge.accounts.identity import authenticated, current_identity, require_role
from object_challenge.campaigns import service
from object_challenge.core.bodies import json_body
from object_challenge.core.errors import BadRequest

bp = Blueprint("campaigns", __name__, url_prefix="/newapi/campaigns")


@bp.post("", strict_slashes=False)
@require_role("admin")
def create_campaign():
    doc = service.create(json_body(empty=dict), current_identity())
    return jsonify(service.progress(doc)), 201


@bp.get("", strict_slashes=False)
@authenticated
def list_campaigns():
    docs = service.store.campaigns(service.db()).find({}, {"_id": 1, "name": 1, "state": 1, "pass": 1})
    return jsonify({"campaigns": [{"campaign_id": d["_id"], "name": d["name"], "state": d["state"]} for d in docs]})


@bp.get("/<campaign_id>")
@authenticated
def get_campaign(campaign_id):
    return jsonify(service.progress(service.get(campaign_id)))


@bp.patch("/<campaign_id>")
@require_role("admin")
def patch_campaign(campaign_id):
    body = json_body(empty=dict)
    if not isinstance(body, dict) or "paused" not in body:
        raise service.InvalidField("paused", 'send {"paused": true|false}')
    return jsonify(service.progress(service.set_paused(campaign_id, body["paused"])))


@bp.post("/<campaign_id>/passes")
@require_role("admin")
def start_pass(campaign_id):
    return jsonify(service.start_pass(campaign_id)), 201


@bp.get("/<campaign_id>/players/<int:player_id>")
@authenticated
def get_player(campaign_id, player_id):
    return jsonify(service.player(campaign_id, player_id))


@bp.get("/<campaign_id>/batches")
@authenticated
def list_batches(campaign_id):
    doc = service.get(campaign_id)
    state = request.args.get("state", "failed")
    if state != "failed":
        raise BadRequest("only ?state=failed is listed", code="bad_state")
    return jsonify({"campaign_id": campaign_id, "pass": doc.get("pass"), "batches": service.failed_batches(doc)})


@bp.post("/<campaign_id>/batches/retry")
@require_role("admin")
def retry_batches(campaign_id):
    return jsonify(service.retry_failed(campaign_id))


@bp.get("/<campaign_id>/batches/<int:n>")
@require_role("worker")
def get_batch(campaign_id, n):
    return jsonify(service.batch(campaign_id, n))


@bp.post("/<campaign_id>/batches/<int:n>/results")
@require_role("worker")
def post_results(campaign_id, n):
    return jsonify(service.ingest_results(campaign_id, n, json_body(empty=dict)))
