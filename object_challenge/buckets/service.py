"""Bucket admission: read the request, decide by the rule, create in the storage upstream.

The decision and the creation are two steps, as in seed 004: this service
decides, the storage upstream (``STORAGE_URL``, ``POST /arvan``) creates. The
gateway makes the same decision at the edge and only falls back to this one when
it has no snapshot.
"""

import json

import requests
from flask import current_app

from object_challenge.accounts.identity import gateway_headers
from object_challenge.accounts.snapshot import grants_table
from object_challenge.buckets.names import name_problem
from object_challenge.buckets.rules import admit
from object_challenge.core.errors import ApiError, BadRequest, Conflict, Forbidden, ServiceUnavailable

_session = requests.Session()


class InvalidBucket(BadRequest):
    code = "invalid_bucket"

    def __init__(self, reason):
        super().__init__(reason, result="invalid", reason=reason)


class NotAllowed(Forbidden):
    code = "not_allowed"

    def __init__(self, name):
        super().__init__(
            f"you may not create '{name}': its prefix is reserved; ask an operator for a grant",
            result="not allowed",
        )


class BucketNameTaken(Conflict):
    code = "bucket_exists"

    def __init__(self, name):
        super().__init__(f"bucket '{name}' already exists; choose another name", result="exists", bucket=name)


def bucket_name_from(raw_body):
    """The bucket name in a request body; raises InvalidBucket with the reason."""
    try:
        body = json.loads(raw_body or b"")
    except (ValueError, UnicodeDecodeError):
        raise InvalidBucket('the body must be JSON: {"bucket": "<name>"}') from None
    if not isinstance(body, dict):
        raise InvalidBucket('the body must be a JSON object: {"bucket": "<name>"}')
    if "bucket" not in body:
        raise InvalidBucket("the body has no 'bucket' field")
    name = body["bucket"]
    if not isinstance(name, str):
        raise InvalidBucket("'bucket' must be a string")
    problem = name_problem(name)
    if problem:
        raise InvalidBucket(problem)
    return name


def decide(identity, name):
    """Raises NotAllowed unless the rule admits ``identity`` to create ``name``."""
    if not admit(identity.user_id, name, grants_table()):
        raise NotAllowed(name)


def create_in_storage(identity, name, request_id=""):
    """Ask the storage upstream to create the bucket; returns its JSON answer."""
    headers = gateway_headers(identity, current_app.config["GATEWAY_SECRET"], request_id)
    try:
        answer = _session.post(
            current_app.config["STORAGE_URL"].rstrip("/") + "/arvan",
            json={"bucket": name},
            headers=headers,
            timeout=(1, 10),
        )
    except requests.RequestException as exc:
        raise ServiceUnavailable(
            f"the storage upstream did not answer ({exc.__class__.__name__}); retry later"
        ) from None
    if answer.status_code == 409:
        raise BucketNameTaken(name)
    if answer.status_code not in (200, 201):
        raise ApiError(f"the storage upstream answered {answer.status_code}", code="storage_error")
    return answer.json()
