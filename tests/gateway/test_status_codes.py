"""One status -> error code table (object_challenge/core/errors.py STATUS_CODES): the gateway's
own refusals (lua/oc/errors.lua, with the settings nginx/render.py renders) and the services'
(the Flask error handlers) name every status either can send the same way."""

import json

import flask
import pytest
from lua_harness import LuaHarness, rendered_settings
from werkzeug.exceptions import abort

from object_challenge.core import errors

STATUSES = [400, 401, 403, 404, 405, 409, 413, 414, 429, 431, 502, 503, 504]


@pytest.fixture(scope="module")
def lua():
    harness = LuaHarness().start()
    assert harness.run("settings", json.dumps(rendered_settings())) == {"ok": True}
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def service():
    app = flask.Flask(__name__)
    errors.register(app)

    @app.route("/abort/<int:status>")
    def aborting(status):
        abort(status)

    return app.test_client()


def gateway_codes(lua):
    return [body["error"] for body in lua.run("statuses", STATUSES)]


def service_codes(service):
    answers = [service.get(f"/abort/{status}") for status in STATUSES]
    assert [a.status_code for a in answers] == STATUSES
    return [a.get_json()["error"] for a in answers]


def test_the_gateway_and_the_services_send_the_same_code_for_every_status(lua, service):
    assert gateway_codes(lua) == service_codes(service)


def test_the_codes_are_the_ones_the_docs_name(lua):
    codes = dict(zip(STATUSES, gateway_codes(lua), strict=True))
    assert (codes[413], codes[414], codes[431]) == ("payload_too_large", "uri_too_long", "headers_too_large")


def test_a_service_refusal_by_class_uses_the_table():
    assert [
        cls.code
        for cls in (
            errors.BadRequest,
            errors.Unauthorized,
            errors.Forbidden,
            errors.NotFound,
            errors.Conflict,
            errors.TooManyRequests,
            errors.ServiceUnavailable,
        )
    ] == [errors.STATUS_CODES[s][0] for s in (400, 401, 403, 404, 409, 429, 503)]
