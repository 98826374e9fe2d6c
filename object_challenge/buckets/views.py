"""HTTP for bucket admission (``POST /bucket``) and the storage mock (``POST /arvan``)."""

from flask import Blueprint, jsonify, request
from mongoengine import NotUniqueError

from object_challenge.accounts.identity import authenticated, current_identity
from object_challenge.buckets import service
from object_challenge.buckets.models import Bucket
from object_challenge.core.errors import request_id

bp = Blueprint("buckets", __name__)
storage_bp = Blueprint("storage", __name__)


@bp.post("/bucket")
def create_bucket():
    identity = current_identity()
    name = service.bucket_name_from(request.get_data())
    service.decide(identity, name)
    created = service.create_in_storage(identity, name, request_id())
    return jsonify(created), 201


@storage_bp.post("/arvan")
@authenticated
def storage_create():
    """The object-store mock: create a bucket; the unique index on name decides races."""
    name = service.bucket_name_from(request.get_data())
    try:
        Bucket(name=name, owner=current_identity().user_id).save(force_insert=True)
    except NotUniqueError:
        raise service.BucketNameTaken(name) from None
    return jsonify({"result": "ok", "bucket": name}), 201
