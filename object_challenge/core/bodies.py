"""The JSON body of a request, read one way by every service's views.

(The bucket contract reads its body itself: its refusals have their own shape,
``buckets/service.py bucket_name_from``.)
"""

import json

from flask import request

from object_challenge.core.errors import BadRequest

NO_BODY = "send a JSON body"
NOT_JSON = "the body is not valid JSON"
TOO_DEEP = "the body is nested too deeply"
REQUIRED = object()  # json_body(empty=REQUIRED): a missing body is refused


def bad_json(message):
    """The 400 of a body that is not JSON: ``bad_json`` and ``message``."""
    return BadRequest(message, code="bad_json")


def parse_json(raw, refuse=bad_json):
    """``raw`` (bytes) as a JSON value (NaN and Infinity parse: what stores data refuses
    them). Not JSON, or nested deeper than Python's parser goes: ``refuse(message)`` is raised."""
    try:
        return json.loads(raw)
    except ValueError:
        raise refuse(NOT_JSON) from None
    except RecursionError:
        raise refuse(TOO_DEEP) from None


def json_body(empty=REQUIRED, refuse=bad_json, no_body=NO_BODY):
    """The request's body as a JSON value. A body of white space alone is none: it reads as
    ``empty`` (called if callable: ``dict`` gives a new {} each time), or with ``REQUIRED``
    ``refuse(no_body)`` is raised."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if empty is REQUIRED:
            raise refuse(no_body)
        return empty() if callable(empty) else empty
    return parse_json(raw, refuse)
