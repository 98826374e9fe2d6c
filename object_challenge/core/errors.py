"""One JSON error shape for every answer the services make.

``{"error": "<code>", "message": "<what went wrong and what to do>",
"request_id": "..."}`` plus any extra fields a contract asks for. Views and
services raise; only this module renders.
"""

import logging

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    code = "error"

    def __init__(self, message, *, code=None, headers=None, **extra):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message="send 'Authorization: Token <token>'", **kw):
        kw.setdefault("headers", {"WWW-Authenticate": 'Token realm="object_challenge"'})
        super().__init__(message, **kw)


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Locked(ApiError):
    status, code = 423, "locked"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, message, *, retry_after=1, **kw):
        kw.setdefault("headers", {"Retry-After": str(max(1, int(retry_after + 0.999)))})
        super().__init__(message, **kw)


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


def request_id():
    try:
        return request.headers.get("X-Request-Id", "")
    except RuntimeError:
        return ""


def error_response(status, code, message, headers=None, **extra):
    body = {"error": code, "message": message, "request_id": request_id()}
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _api_error(err):
    return error_response(err.status, err.code, err.message, err.headers, **err.extra)


def _http_error(err):
    code = (err.name or "error").lower().replace(" ", "_")
    headers = {}
    if err.code == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    message = err.description or err.name
    if err.code == 413:
        message = "request body too large; send at most BODY_LIMIT_BYTES"
    return error_response(err.code or 500, code, message, headers)


def _unexpected(err):
    log.exception("unhandled error")
    return error_response(500, "internal_error", "unexpected server error; it was logged with this request id")


def register(app):
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
