"""One JSON error shape for every answer the services make.

``{"error": "<code>", "message": "<what went wrong and what to do>",
"request_id": "..."}`` plus any extra fields a contract asks for. Views and
services raise; only this module renders.

``STATUS_CODES`` is the one status -> error code table: the gateway renders its
own refusals from it too (nginx/render.py passes it into the Lua settings), so a
413 is ``payload_too_large`` whoever answers.
"""

import logging

import pymongo.errors
import redis.exceptions
from flask import jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# status -> (error code, default message), for the services and the gateway
STATUS_CODES = {
    400: ("bad_request", "the request could not be parsed"),
    401: ("unauthorized", "send Authorization: Token <token>"),
    403: ("forbidden", "this identity may not do that"),
    404: ("not_found", "no such route; see GET / for the index"),
    405: ("method_not_allowed", "this route does not take that method"),
    408: ("request_timeout", "the request was not sent in time"),
    409: ("conflict", "the request conflicts with the current state"),
    411: ("length_required", "send Content-Length (or a chunked body)"),
    413: ("payload_too_large", "the request body is over the size limit"),
    414: ("uri_too_long", "the request URI is too long"),
    423: ("locked", "the resource is locked"),
    429: ("too_many_requests", "too many requests; retry after Retry-After seconds"),
    431: ("headers_too_large", "the request headers are too large"),
    500: ("internal_error", "the gateway failed; the request id is in the log"),
    501: ("not_implemented", "the gateway does not implement that (method or transfer encoding)"),
    502: ("bad_gateway", "the service behind this route is not answering; retry shortly"),
    503: ("service_unavailable", "the service behind this route is unavailable; retry shortly"),
    504: ("gateway_timeout", "the service behind this route did not answer in time"),
    505: ("http_version_not_supported", "send HTTP/1.0 or HTTP/1.1"),
}


def code_of(status):
    """The error code of ``status`` (``error`` for one the table lacks)."""
    return STATUS_CODES.get(status, ("error",))[0]


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
    status, code = 400, code_of(400)


class Unauthorized(ApiError):
    status, code = 401, code_of(401)

    def __init__(self, message="send 'Authorization: Token <token>'", **kw):
        kw.setdefault("headers", {"WWW-Authenticate": 'Token realm="object_challenge"'})
        super().__init__(message, **kw)


class Forbidden(ApiError):
    status, code = 403, code_of(403)


class NotFound(ApiError):
    status, code = 404, code_of(404)


class Conflict(ApiError):
    status, code = 409, code_of(409)


class Locked(ApiError):
    status, code = 423, code_of(423)


class TooManyRequests(ApiError):
    status, code = 429, code_of(429)

    def __init__(self, message, *, retry_after=1, **kw):
        kw.setdefault("headers", {"Retry-After": str(max(1, int(retry_after + 0.999)))})
        super().__init__(message, **kw)


class ServiceUnavailable(ApiError):
    status, code = 503, code_of(503)


class StoreUnavailable(ServiceUnavailable):
    """A store (``redis`` or ``mongo``, the names /healthz uses) did not answer within STORE_TIMEOUT_SECONDS."""

    code = "store_unavailable"

    def __init__(self, store, detail=""):
        super().__init__(
            f"{store} is not answering; retry in a few seconds",
            headers={"Retry-After": "2"},
            store=store,
        )
        self.detail = detail


# what a store that is down or unreachable raises (not: a bad query, a duplicate key)
STORE_ERRORS = {
    "redis": (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError),
    "mongo": (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError),
}


def store_of(err):
    """``"redis"`` / ``"mongo"`` when ``err`` says that store is unreachable, else None."""
    seen = 0
    while err is not None and seen < 5:  # also a store error some code wrapped
        for store, kinds in STORE_ERRORS.items():
            if isinstance(err, kinds):
                return store
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


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
    code = STATUS_CODES[err.code][0] if err.code in STATUS_CODES else (err.name or "error").lower().replace(" ", "_")
    headers = {}
    if err.code == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    message = err.description or err.name
    if err.code == 413:
        message = "request body too large; send at most BODY_LIMIT_BYTES"
    return error_response(err.code or 500, code, message, headers)


def _unexpected(err):
    store = store_of(err)
    if store is not None:
        log.warning("store %s unavailable: %s: %s", store, err.__class__.__name__, str(err)[:200])
        return _api_error(StoreUnavailable(store))
    log.exception("unhandled error")
    return error_response(500, "internal_error", "unexpected server error; it was logged with this request id")


def register(app):
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
