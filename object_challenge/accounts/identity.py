"""Who is calling.

Behind the gateway the identity arrives in ``X-User-*`` headers, trusted only
together with ``X-Gateway-Secret``. Called directly (tests, benchmarks), a
service authenticates ``Authorization: Token <t>`` (or HTTP Basic with the token
as user name) itself, through the same Redis snapshot the gateway reads and,
without one, MongoDB.
"""

import base64
import binascii
import functools
import hmac
import json
from dataclasses import dataclass
from urllib.parse import quote, unquote

from flask import current_app, request

from object_challenge.accounts.models import User, hash_token
from object_challenge.core import keys
from object_challenge.core.errors import Forbidden, Unauthorized
from object_challenge.core.extensions import redis


@dataclass(frozen=True)
class Identity:
    user_id: int
    name: str
    role: str

    @property
    def is_admin(self):
        return self.role == "admin"


def parse_authorization(header):
    """The token in an Authorization header, or None when it is missing or malformed.

    Accepts ``Token <t>`` and ``Basic base64(<t>:)`` (the token as user name, for
    clients that can only carry credentials in the URL). One token, nothing else.
    """
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2:
        return None
    scheme, value = parts
    scheme = scheme.lower()
    if scheme == "token":
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, _password = decoded.partition(":")
        return user if sep and user and " " not in user else None
    return None


def lookup_token(token):
    """The identity dict of ``token`` or None: snapshot in Redis first, then MongoDB."""
    if not token:
        return None
    try:
        cached = redis.hget(keys.GW_TOKENS, hash_token(token))
        if cached is not None:
            return json.loads(cached)
        snapshot_present = redis.exists(keys.GW_VERSION)
    except Exception:  # Redis down: MongoDB is the source of truth
        snapshot_present = False
    if snapshot_present:
        return None
    user = User.by_token(token)
    return user.to_identity() if user else None


def encode_header(value):
    """An identity value as the gateway sends it (X-User-Name, X-User-Role): percent-encoded
    UTF-8, RFC 3986 unreserved characters kept, so no name can break a header line."""
    return quote(value, safe="-_.~")


def decode_header(value):
    """The value of an identity header the gateway encoded (``encode_header``)."""
    return unquote(value, errors="replace")


def gateway_headers(identity, secret, request_id=""):
    """The identity headers a service sends another service as the gateway would."""
    return {
        "X-User-Id": str(identity.user_id),
        "X-User-Name": encode_header(identity.name),
        "X-User-Role": encode_header(identity.role),
        "X-Gateway-Secret": secret,
        "X-Request-Id": request_id,
    }


def _from_gateway():
    secret = request.headers.get("X-Gateway-Secret")
    if not secret or not hmac.compare_digest(secret, current_app.config["GATEWAY_SECRET"]):
        return None
    try:
        user_id = int(request.headers["X-User-Id"])
    except (KeyError, ValueError):
        return None
    name = decode_header(request.headers.get("X-User-Name", ""))
    return Identity(user_id, name, decode_header(request.headers.get("X-User-Role", "user")))


def current_identity():
    """The caller's identity; raises Unauthorized when there is none."""
    # cached on the request, not on `g`: an app context can outlive one request
    cached = request.environ.get("oc.identity")
    if cached is not None:
        return cached
    identity = _from_gateway()
    if identity is None:
        token = parse_authorization(request.headers.get("Authorization"))
        if token is None:
            raise Unauthorized("missing or malformed credentials; send 'Authorization: Token <token>'")
        found = lookup_token(token)
        if found is None:
            raise Unauthorized("unknown token; ask an operator for a valid token")
        identity = Identity(int(found["user_id"]), found["name"], found["role"])
    request.environ["oc.identity"] = identity
    return identity


def require_role(*roles):
    """View decorator: the caller must have one of ``roles`` (admin always passes)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            identity = current_identity()
            if roles and identity.role not in roles and not identity.is_admin:
                raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {identity.role}")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def authenticated(view):
    """View decorator: any authenticated caller."""
    return require_role()(view)
