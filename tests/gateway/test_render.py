"""nginx/render.py: one template, two flavours, settings from config.py."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def render(tmp_path, flavour, *extra, **env):
    prefix = tmp_path / flavour
    environ = {"PATH": "/usr/bin:/bin", "GATEWAY_PORT": "18999", **{k: str(v) for k, v in env.items()}}
    out = subprocess.run(
        [sys.executable, str(ROOT / "nginx" / "render.py"), "--flavour", flavour, "--prefix", str(prefix), *extra],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    conf = Path(out.stdout.strip())
    assert conf == prefix / "conf" / "nginx.conf"
    return conf, conf.read_text()


def test_debian_conf_loads_the_lua_module_and_passes_nginx_t(tmp_path):
    conf, text = render(tmp_path, "debian")
    assert "ngx_http_lua_module.so" in text
    assert f"{ROOT}/lua/?.lua;/usr/share/lua/5.1/?.lua;;" in text
    for sub in ("logs", "tmp/body", "tmp/proxy"):
        assert (conf.parent.parent / sub).is_dir()
    check = subprocess.run(
        ["nginx", "-t", "-p", str(conf.parent.parent), "-c", str(conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_openresty_conf_uses_the_mounted_modules_and_no_load_module(tmp_path):
    _, text = render(
        tmp_path,
        "openresty",
        "--lua-dir",
        "/etc/oc/lua",
        "--access-log",
        "/dev/stdout",
        "--error-log",
        "/dev/stderr",
        GATEWAY_HOST="0.0.0.0",
        API_ADDR="api:8000",
    )
    assert "load_module" not in text
    assert 'lua_package_path "/etc/oc/lua/?.lua;;"' in text
    assert "listen 0.0.0.0:18999" in text
    assert "server api:8000;" in text
    assert "access_log /dev/stdout oc_json;" in text
    assert "error_log /dev/stderr warn;" in text


@pytest.mark.parametrize("value,on", [("off", False), ("on", True), ("0", False), ("1", True)])
def test_rate_limits_switch(tmp_path, value, on):
    _, text = render(tmp_path, "debian", RATE_LIMITS=value)
    assert f'"rate_limits":{"true" if on else "false"}' in text


def test_settings_reach_the_lua_side(tmp_path):
    _, text = render(
        tmp_path,
        "debian",
        REDIS_URL="redis://:s%40cret@10.0.0.5:6390/3",
        BODY_LIMIT_BYTES=1000,
        RATE_LIMIT_USER_RPS=7,
        GATEWAY_SECRET="gw-secret",
    )
    assert '"redis":{"host":"10.0.0.5","port":6390,"db":3,"password":"s@cret"}' in text
    assert "client_max_body_size 1000;" in text
    assert '"user_rps":7.0' in text and '"gateway_secret":"gw-secret"' in text
