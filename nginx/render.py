#!/usr/bin/env python3
"""Render the gateway's nginx conf from nginx/gateway.conf.tmpl.

    python nginx/render.py --flavour debian|openresty --prefix DIR

Settings come from object_challenge/core/config.py (``load()``, i.e. the
environment: GATEWAY_HOST, GATEWAY_PORT, API_ADDR, JOBS_ADDR, PUBLISH_ADDR,
STORAGE_ADDR, REDIS_URL, GATEWAY_SECRET, BODY_LIMIT_BYTES, RUNS_BODY_LIMIT_BYTES,
SNAPSHOT_POLL_SECONDS, RATE_LIMITS, RATE_LIMIT_USER_RPS/_BURST,
RATE_LIMIT_IP_RPS/_BURST).  Writes DIR/conf/nginx.conf, creates DIR/logs and
DIR/tmp/*, and prints the conf path.  Run it with
``nginx -p DIR -c DIR/conf/nginx.conf -g 'daemon off;'``.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the package beside nginx/

from object_challenge import __version__
from object_challenge.core import config, errors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = HERE / "gateway.conf.tmpl"

# Started by root, nginx runs its workers as `nobody`, who cannot read a checkout
# under a private directory (mktemp -d, a home): locally they stay root's.
RUN_AS = "user root;\n" if os.geteuid() == 0 else ""

FLAVOURS = {
    "debian": {
        "load_modules": RUN_AS + "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
        "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
        "lua_dir": str(ROOT / "lua"),
        "lua_path_tail": "/usr/share/lua/5.1/?.lua;;",
        "prefix": str(ROOT / "var" / "gateway"),
    },
    "openresty": {
        "load_modules": "# openresty: the lua module is built in",
        "lua_dir": "/etc/oc/lua",
        "lua_path_tail": ";",
        "prefix": "/usr/local/openresty/nginx",
    },
}

PROXY_COMMON = """\
proxy_http_version 1.1;
proxy_set_header X-Request-Id $oc_request_id;
proxy_set_header Connection "";
proxy_set_header Host $oc_host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_connect_timeout 1s;
proxy_send_timeout 30s;
proxy_read_timeout 30s;"""

# Identity towards the services, from variables the access phase sets; these
# also replace any client header of the same name.
PROXY_IDENTITY = """\
proxy_set_header X-User-Id $oc_user_id;
proxy_set_header X-User-Name $oc_user_name;
proxy_set_header X-User-Role $oc_user_role;
proxy_set_header X-Gateway-Secret $oc_gateway_secret;"""


def load_settings():
    return config.load()


def package_version():
    return __version__


def redis_target(url):
    parts = urlsplit(url)
    if parts.scheme not in ("redis", ""):
        raise SystemExit(f"render: REDIS_URL={url!r}: the gateway speaks plain redis:// only")
    db = (parts.path or "/0").lstrip("/") or "0"
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": int(db),
        "password": unquote(parts.password) if parts.password else None,
    }


def addr(value):
    return value.split("://", 1)[-1].rstrip("/")


def lua_settings(cfg):
    index = {
        "name": "object_challenge",
        "version": package_version(),
        # each link as the api index has them (GET /newapi/): where, and with which method
        "links": {
            "bucket": {"href": "/bucket", "method": "POST"},
            "api": {"href": "/newapi/", "method": "GET"},
            "jobs": {"href": "/newapi/jobs?mine=1", "method": "GET"},
            "puzzles": {"href": "/newapi/puzzle/", "method": "GET"},
            "health": {"href": "/healthz", "method": "GET"},
        },
    }
    # every key lua/oc/settings.lua requires (it has no defaults); a setting
    # missing from cfg is an AttributeError here, before nginx is started
    return {
        "name": "object_challenge",
        "version": index["version"],
        "gateway_secret": cfg.GATEWAY_SECRET,
        "body_limit": cfg.BODY_LIMIT_BYTES,
        "snapshot_poll": cfg.SNAPSHOT_POLL_SECONDS,
        "rate_limits": cfg.RATE_LIMITS,
        "user_rps": cfg.RATE_LIMIT_USER_RPS,
        "user_burst": cfg.RATE_LIMIT_USER_BURST,
        "ip_rps": cfg.RATE_LIMIT_IP_RPS,
        "ip_burst": cfg.RATE_LIMIT_IP_BURST,
        "redis": redis_target(cfg.REDIS_URL),
        "redis_timeout_ms": cfg.GATEWAY_REDIS_TIMEOUT_MS,
        "auth_ttl": cfg.GATEWAY_AUTH_TTL,
        "auth_neg_ttl": cfg.GATEWAY_AUTH_NEG_TTL,
        "auth_fallback_ttl": cfg.GATEWAY_AUTH_FALLBACK_TTL,
        "cache_max_body": cfg.GATEWAY_CACHE_MAX_BODY,
        "index_json": json.dumps(index, separators=(",", ":")),
        "status_codes": {str(status): list(pair) for status, pair in errors.STATUS_CODES.items()},
        "streams_per_user": cfg.STREAMS_PER_USER,
    }


def real_ip(cfg):
    """realip directives for TRUSTED_PROXIES (none: off, $remote_addr is the peer's address)."""
    if not cfg.TRUSTED_PROXIES:
        return "    # TRUSTED_PROXIES is off: the client address is the connection's"
    lines = ["    # TRUSTED_PROXIES: the client address is the last X-Forwarded-For entry no trusted proxy added"]
    lines += [f"    set_real_ip_from {proxy};" for proxy in cfg.TRUSTED_PROXIES]
    lines += ["    real_ip_header X-Forwarded-For;", "    real_ip_recursive on;"]
    return "\n".join(lines)


def indent(text, spaces):
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def render(flavour, prefix, cfg, lua_dir=None, workers="auto", access_log=None, error_log=None):
    f = FLAVOURS[flavour]
    prefix = Path(prefix).resolve() if flavour == "debian" else Path(prefix)
    settings_json = json.dumps(lua_settings(cfg), separators=(",", ":"))
    if "]==]" in settings_json:
        raise SystemExit("render: a setting contains ']==]'; choose another value")
    values = {
        "flavour": flavour,
        "load_modules": f["load_modules"],
        "workers": str(workers),
        "prefix": str(prefix),
        "lua_path": f"{lua_dir or f['lua_dir']}/?.lua;{f['lua_path_tail']}",
        "body_limit": str(cfg.BODY_LIMIT_BYTES),
        "queue_body_limit": str(cfg.QUEUE_BODY_LIMIT_BYTES),
        "runs_body_limit": str(cfg.RUNS_BODY_LIMIT_BYTES),
        "access_log": access_log or f"{prefix}/logs/access.log",
        "error_log": error_log or f"{prefix}/logs/error.log",
        # a file is written in 64 KiB batches; a pipe (container stdout) line by line
        "access_log_buffer": "" if access_log in ("off", "/dev/stdout") else " buffer=64k flush=1s",
        "settings_json": settings_json,
        "api_addr": addr(cfg.API_ADDR),
        "jobs_addr": addr(cfg.JOBS_ADDR),
        "publish_addr": addr(cfg.PUBLISH_ADDR),
        "storage_addr": addr(cfg.STORAGE_ADDR),
        "listen": f"{cfg.GATEWAY_HOST}:{cfg.GATEWAY_PORT}",
        "metrics_listen": addr(cfg.METRICS_ADDR),
        "metrics_log": '    log_by_lua_block { require("oc.metrics").log() }' if cfg.GATEWAY_METRICS else "",
        "proxy_common": indent(PROXY_COMMON, 8),
        "proxy_identity": indent(PROXY_IDENTITY, 8),
        "real_ip": real_ip(cfg),
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if access_log == "off":
        text = text.replace("access_log off oc_json;", "access_log off;")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="debian")
    parser.add_argument("--prefix", help="nginx prefix dir (conf/, logs/, tmp/ inside)")
    parser.add_argument(
        "--lua-dir", help="where lua/oc lives (default: this repo's lua/ for debian, /etc/oc/lua for openresty)"
    )
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--access-log", help="path (e.g. /dev/stdout in a container), or 'off'")
    parser.add_argument("--error-log", help="path (e.g. /dev/stderr in a container)")
    args = parser.parse_args(argv)
    prefix = Path(args.prefix or FLAVOURS[args.flavour]["prefix"])
    text = render(args.flavour, prefix, load_settings(), args.lua_dir, args.workers, args.access_log, args.error_log)
    for sub in ("conf", "logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(text)
    print(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
