"""The Production config refuses development defaults and logs JSON."""

import json
import logging

import pytest

from object_challenge.app import create_app
from object_challenge.core import config as config_module
from object_challenge.core.logging import JsonFormatter

GOOD = {"APP_ENV": "production", "SECRET_KEY": "s" * 40, "GATEWAY_SECRET": "g" * 40}


def production(stores, **changes):
    environ = {**GOOD, "MONGO_URI": f"{stores.mongo_uri}/oc_prod_check", "REDIS_URL": stores.redis_url}
    cfg = config_module.load(
        "production", {**environ, **{k: v for k, v in changes.items() if k.isupper() and isinstance(v, str)}}
    )
    for key, value in changes.items():
        if not isinstance(value, str):
            setattr(cfg, key, value)
    return cfg


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_production_starts_with_real_secrets(stores, restore_logging):
    app = create_app(production(stores))
    assert app.config["NAME"] == "production" and not app.debug


def test_production_refuses_debug(stores):
    with pytest.raises(RuntimeError, match="DEBUG is on"):
        create_app(production(stores, DEBUG=True))


@pytest.mark.parametrize("name", ["SECRET_KEY", "GATEWAY_SECRET"])
def test_production_refuses_the_development_secrets(stores, name):
    cfg = production(stores)
    setattr(cfg, name, config_module.DEV_SECRET)
    with pytest.raises(RuntimeError, match=f"{name} is the development default"):
        create_app(cfg)


@pytest.mark.parametrize("name", ["SECRET_KEY", "GATEWAY_SECRET"])
def test_production_refuses_unset_secrets(stores, name):
    environ = {**GOOD, "MONGO_URI": f"{stores.mongo_uri}/oc_prod_check", "REDIS_URL": stores.redis_url}
    del environ[name]
    with pytest.raises(RuntimeError, match=name):
        create_app(config_module.load("production", environ))


def test_production_logs_json(stores, restore_logging, capsys):
    create_app(production(stores))
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, JsonFormatter)
    logging.getLogger("object_challenge.test").warning("hello %s", "ops")
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "hello ops" and entry["level"] == "WARNING"


def test_fixture_token_holders_are_named(app):
    from object_challenge.accounts import service as accounts
    from object_challenge.ops.production import UnsafeStart, fixture_token_holders, refuse_unsafe_start

    with app.app_context():
        assert fixture_token_holders() == ["a", "admin", "b", "c", "worker"]
        with pytest.raises(UnsafeStart, match="rotate-token"):
            refuse_unsafe_start()
        for name in ("a", "b", "c", "worker"):
            accounts.rotate_token(name)
        accounts.revoke_token("admin")
        assert fixture_token_holders() == []
        refuse_unsafe_start()
