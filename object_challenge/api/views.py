"""The api service: small /newapi reads and the gateway's internal auth look-up."""

from flask import Blueprint, jsonify, request

from object_challenge import __version__
from object_challenge.accounts.identity import authenticated, current_identity
from object_challenge.buckets.models import Bucket

bp = Blueprint("api", __name__, url_prefix="/newapi")
internal_bp = Blueprint("internal", __name__, url_prefix="/_internal")


@bp.get("/")
def api_index():
    """What is under /newapi (linked from the gateway's ``GET /``): public, cacheable."""
    response = jsonify(
        {
            "name": "object_challenge",
            "version": __version__,
            "links": {
                "info": {"href": "/newapi/info", "method": "GET"},
                "whoami": {"href": "/newapi/whoami", "method": "GET", "auth": "token"},
                "buckets": {"href": "/newapi/buckets", "method": "GET", "auth": "token"},
                "create_bucket": {"href": "/bucket", "method": "POST", "auth": "token"},
                "puzzles": {"href": "/newapi/puzzle/", "method": "GET", "auth": "token"},
                "enqueue_job": {"href": "/newapi/queue", "method": "POST", "auth": "token"},
                "job": {"href": "/newapi/jobs/{job_id}", "method": "GET", "auth": "token"},
                "openapi": {"href": "/newapi/docs/openapi.json", "method": "GET"},
            },
        }
    )
    response.headers["Cache-Control"] = "public, max-age=30"
    return response


@bp.get("/info")
def info():
    """Public facts about the service: the same for everyone, cacheable."""
    response = jsonify({"name": "object_challenge", "version": __version__})
    response.headers["Cache-Control"] = "public, max-age=30"
    return response


@bp.get("/whoami")
@authenticated
def whoami():
    """The identity this service sees, and the identity headers that reached it."""
    identity = current_identity()
    seen = {k: v for k, v in request.headers.items() if k.lower().startswith(("x-user-", "x-consumer-"))}
    response = jsonify(
        {
            "user_id": identity.user_id,
            "name": identity.name,
            "role": identity.role,
            "headers": seen,
            "request_id": request.headers.get("X-Request-Id", ""),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/buckets")
@authenticated
def my_buckets():
    """The caller's buckets: depends on the user, so cacheable privately only."""
    identity = current_identity()
    names = [b.to_json() for b in Bucket.objects(owner=identity.user_id).order_by("name")]
    response = jsonify({"buckets": names, "count": len(names)})
    response.headers["Cache-Control"] = "private, max-age=5"
    return response


@internal_bp.get("/auth")
@authenticated
def auth():
    """For the gateway when it has no snapshot: the caller's identity or 401."""
    identity = current_identity()
    return jsonify({"user_id": identity.user_id, "name": identity.name, "role": identity.role})
