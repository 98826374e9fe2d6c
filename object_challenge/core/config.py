"""Settings, read once from the environment.

Nothing else in the package reads ``os.environ``: every module takes its settings
from ``current_app.config`` or from :func:`load` below.  The defaults point at the
stores that ``make run`` starts, so ``python manage.py ...`` talks to the same
database as a running stack.
"""

import ipaddress
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: fixtures/, var/, nginx/

# Tokens that ship in fixtures/ -- a production deployment must not accept them.
FIXTURE_TOKENS = frozenset({"token_1", "token_2", "token_3", "token_worker", "token_admin"})
DEV_SECRET = "dev-secret-change-me"


def _env(name, default=None, environ=None):
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    return default if value in (None, "") else value


def _int(name, default, environ=None):
    value = _env(name, None, environ)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"config: {name}={value!r} is not an integer; set a whole number") from None


def _float(name, default, environ=None):
    value = _env(name, None, environ)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"config: {name}={value!r} is not a number") from None


def _bool(name, default, environ=None):
    value = _env(name, None, environ)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _switch(name, default, environ=None):
    """An on/off setting: off, 0, false and no turn it off; anything else on."""
    value = _env(name, None, environ)
    if value is None:
        return default
    return value.strip().lower() not in ("off", "0", "false", "no")


def _proxies(value):
    """TRUSTED_PROXIES: addresses or CIDR ranges, comma- or space-separated ("" or off: none)."""
    if value.strip().lower() in ("", "off", "0", "false", "no"):
        return ()
    entries = tuple(part for part in value.replace(",", " ").split() if part)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(f"config: TRUSTED_PROXIES entry {entry!r} is not an address or CIDR range") from None
    return entries


def settings_from_env(environ=None):
    """Every setting the services, the gateway renderer and the tools use."""
    e = environ
    gateway_port = _int("GATEWAY_PORT", 8080, e)
    mongo_port = _int("MONGO_PORT", 27018, e)
    redis_port = _int("REDIS_PORT", 6380, e)
    player_api_addr = _env("PLAYER_API_ADDR", f"127.0.0.1:{gateway_port + 5}", e)
    redis_url = _env("REDIS_URL", None, e) or _env("REDIS_URI", None, e) or f"redis://127.0.0.1:{redis_port}/0"
    return {
        # stores
        "MONGO_URI": _env("MONGO_URI", f"mongodb://127.0.0.1:{mongo_port}/object_challenge", e),
        "MONGO_DB": _env("MONGO_DB", None, e),
        "REDIS_URL": redis_url,
        "MONGO_PORT": mongo_port,
        "REDIS_PORT": redis_port,
        "VAR_DIR": _env("VAR_DIR", str(ROOT / "var"), e),
        # gateway and service addresses (make run: GATEWAY_PORT+1..+4)
        "GATEWAY_HOST": _env("GATEWAY_HOST", "127.0.0.1", e),
        "GATEWAY_PORT": gateway_port,
        "API_ADDR": _env("API_ADDR", f"127.0.0.1:{gateway_port + 1}", e),
        # the gateway's internal metrics listener (GET /_metrics); off: no counting at all
        "METRICS_ADDR": _env("METRICS_ADDR", f"127.0.0.1:{gateway_port + 6}", e),
        "GATEWAY_METRICS": _bool("GATEWAY_METRICS", True, e),
        "JOBS_ADDR": _env("JOBS_ADDR", f"127.0.0.1:{gateway_port + 2}", e),
        "PUBLISH_ADDR": _env("PUBLISH_ADDR", f"127.0.0.1:{gateway_port + 3}", e),
        "STORAGE_ADDR": _env("STORAGE_ADDR", f"127.0.0.1:{gateway_port + 4}", e),
        "STORAGE_URL": _env("STORAGE_URL", None, e),
        "GATEWAY_SECRET": _env("GATEWAY_SECRET", DEV_SECRET, e),
        "SECRET_KEY": _env("SECRET_KEY", DEV_SECRET, e),
        "BODY_LIMIT_BYTES": _int("BODY_LIMIT_BYTES", 64 * 1024, e),
        "QUEUE_BODY_LIMIT_BYTES": _int("QUEUE_BODY_LIMIT_BYTES", 1024 * 1024, e),
        "SNAPSHOT_POLL_SECONDS": _float("SNAPSHOT_POLL_SECONDS", 0.5, e),
        "RATE_LIMITS": _switch("RATE_LIMITS", True, e),
        "RATE_LIMIT_USER_RPS": _float("RATE_LIMIT_USER_RPS", 50, e),
        "RATE_LIMIT_USER_BURST": _int("RATE_LIMIT_USER_BURST", 100, e),
        "RATE_LIMIT_IP_RPS": _float("RATE_LIMIT_IP_RPS", 20, e),
        "RATE_LIMIT_IP_BURST": _int("RATE_LIMIT_IP_BURST", 50, e),
        # the gateway: open SSE streams per user; proxies whose X-Forwarded-For is believed
        "STREAMS_PER_USER": _int("STREAMS_PER_USER", 20, e),
        "TRUSTED_PROXIES": _proxies(_env("TRUSTED_PROXIES", "", e)),
        "GUNICORN_WORKERS": _int("GUNICORN_WORKERS", 0, e),
        # job workers `make run` starts (and keeps running)
        "WORKERS": _int("WORKERS", 1, e),
        # runners (workers declaring run_program on RUNS_QUEUE) `make run` starts
        "RUNNERS": _int("RUNNERS", 1, e),
        # campaign workers (declaring players on queue campaigns) `make run` starts
        "CAMPAIGN_WORKERS": _int("CAMPAIGN_WORKERS", 1, e),
        # how long a request waits for a store that does not answer before a 503
        "STORE_TIMEOUT_SECONDS": _float("STORE_TIMEOUT_SECONDS", 1.0, e),
        # job queue (names from the Sisyphus seed)
        "CLIENT_EXPIRY": _int("CLIENT_EXPIRY", 30, e),
        "REDIS_QUEUE_NAME": _env("REDIS_QUEUE_NAME", "queue", e),
        "MONGO_DATA_DB": _env("MONGO_DATA_DB", "sisyphus_modules", e),
        "MONGO_DATA_COLL_PREFIX": _env("MONGO_DATA_COLL_PREFIX", "data_", e),
        "MONGO_JOB_DB": _env("MONGO_JOB_DB", "sisyphus_jobs", e),
        "MONGO_JOB_COLL_FAILED": _env("MONGO_JOB_COLL_FAILED", "failed", e),
        "MONGO_JOB_COLL_COMPLETED": _env("MONGO_JOB_COLL_COMPLETED", "completed", e),
        "MONGO_JOB_COLL_QUEUED": _env("MONGO_JOB_COLL_QUEUED", "queued", e),
        "MONGO_JOB_COLL_CANCELLED": _env("MONGO_JOB_COLL_CANCELLED", "cancelled", e),
        "JOB_POLL_SCAN": _int("JOB_POLL_SCAN", 1000, e),
        "JOB_LEASE_SECONDS": _float("JOB_LEASE_SECONDS", 60, e),
        "JOB_MAX_ATTEMPTS": _int("JOB_MAX_ATTEMPTS", 3, e),
        # job events (jobs/events.py): per job, all attempts together
        "JOB_EVENTS_MAX": _int("JOB_EVENTS_MAX", 10_000, e),
        "JOB_EVENTS_MAX_BYTES": _int("JOB_EVENTS_MAX_BYTES", 1024 * 1024, e),
        # the worker processes' own token (a user with the worker role); none in production
        # means `manage.py worker` needs --token
        "WORKER_TOKEN": _env("WORKER_TOKEN", None, e),
        # runs (issue 14): queue, per-user cap of active runs, limits' defaults and maxima
        "RUNS_QUEUE": _env("RUNS_QUEUE", "runs", e),
        "RUNS_MAX_ACTIVE_PER_USER": _int("RUNS_MAX_ACTIVE_PER_USER", 4, e),
        "RUNS_BODY_LIMIT_BYTES": _int("RUNS_BODY_LIMIT_BYTES", 1024 * 1024, e),
        "RUNS_DEFAULT_WALL_S": _float("RUNS_DEFAULT_WALL_S", 10, e),
        "RUNS_DEFAULT_CPU_S": _float("RUNS_DEFAULT_CPU_S", 5, e),
        "RUNS_DEFAULT_MEMORY_MB": _int("RUNS_DEFAULT_MEMORY_MB", 256, e),
        "RUNS_DEFAULT_PROCESSES": _int("RUNS_DEFAULT_PROCESSES", 64, e),
        "RUNS_DEFAULT_OUTPUT_KB": _int("RUNS_DEFAULT_OUTPUT_KB", 64, e),
        "RUNS_MAX_WALL_S": _float("RUNS_MAX_WALL_S", 60, e),
        "RUNS_MAX_CPU_S": _float("RUNS_MAX_CPU_S", 30, e),
        "RUNS_MAX_MEMORY_MB": _int("RUNS_MAX_MEMORY_MB", 1024, e),
        "RUNS_MAX_PROCESSES": _int("RUNS_MAX_PROCESSES", 256, e),
        "RUNS_MAX_OUTPUT_KB": _int("RUNS_MAX_OUTPUT_KB", 1024, e),
        # publish (Puzzle Massive's defaults)
        "PIECE_LOCK_SECONDS": _float("PIECE_LOCK_SECONDS", 5, e),
        "MOVE_TOKEN_SECONDS": _float("MOVE_TOKEN_SECONDS", 300, e),
        "MOVE_RATE_LIMIT": _int("MOVE_RATE_LIMIT", 30, e),
        "MOVE_RATE_WINDOW_SECONDS": _float("MOVE_RATE_WINDOW_SECONDS", 13, e),
        "MOVE_BAN_SECONDS": _float("MOVE_BAN_SECONDS", 5, e),
        "PUZZLE_FLUSH_SECONDS": _float("PUZZLE_FLUSH_SECONDS", 10, e),
        # metrics: prometheus-client's multiprocess directory (one empty dir per gunicorn service)
        "PROMETHEUS_MULTIPROC_DIR": _env("PROMETHEUS_MULTIPROC_DIR", None, e),
        # campaigns (issue 15): the external player API and the `players` source's keys and rate
        "PLAYER_API_ADDR": player_api_addr,
        "PLAYER_API_URL": _env("PLAYER_API_URL", f"http://{player_api_addr}", e),
        "PLAYER_API_KEYS": _env("PLAYER_API_KEYS", "oc-dev-key", e),
        "PLAYER_API_MAX_ID": _int("PLAYER_API_MAX_ID", 1_200_000, e),
        "PLAYER_API_RPS": _float("PLAYER_API_RPS", 20, e),
        "PLAYER_SOURCE_RPS": _float("PLAYER_SOURCE_RPS", 20, e),
        # logging
        "LOG_FORMAT": _env("LOG_FORMAT", "text", e),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO", e),
    }


def external_stores(environ=None):
    """``(mongo, redis)``: whether MONGO_URI / REDIS_URL (or REDIS_URI) are set, naming servers
    of their own; `make run` then starts no local stand-in for that store."""
    redis_url = _env("REDIS_URL", None, environ) or _env("REDIS_URI", None, environ)
    return _env("MONGO_URI", None, environ) is not None, redis_url is not None


class Config:
    """Base: everything from the environment."""

    DEBUG = False
    TESTING = False
    NAME = "base"
    # gateway tunables (not from the environment; nginx/render.py hands them to Lua)
    GATEWAY_REDIS_TIMEOUT_MS = 200  # each Redis call of the gateway
    GATEWAY_AUTH_TTL = 60  # s a token's identity stays cached at the edge
    GATEWAY_AUTH_NEG_TTL = 5  # s an unknown token stays cached
    GATEWAY_AUTH_FALLBACK_TTL = 1  # s an identity the api service gave (no snapshot) stays cached
    GATEWAY_CACHE_MAX_BODY = 512 * 1024  # bytes: larger answers are not cached

    def __init__(self, environ=None):
        for key, value in settings_from_env(environ).items():
            setattr(self, key, value)
        if not self.STORAGE_URL:
            self.STORAGE_URL = f"http://{self.STORAGE_ADDR}"
        self.MONGODB_SETTINGS = {
            "host": self.MONGO_URI,
            "tz_aware": True,
            # a request waits at most this long for a MongoDB that does not answer (503);
            # connect/socket timeouts stay long: pymongo's monitor uses the connect timeout
            # for its heartbeats, and a busy server must not be declared down
            "serverSelectionTimeoutMS": int(self.STORE_TIMEOUT_SECONDS * 1000),
            "connectTimeoutMS": 5000,
            "socketTimeoutMS": 30000,
        }
        if self.MONGO_DB:
            self.MONGODB_SETTINGS["db"] = self.MONGO_DB
        self.MAX_CONTENT_LENGTH = self.BODY_LIMIT_BYTES

    def as_dict(self):
        return {k: getattr(self, k) for k in dir(self) if k.isupper()}

    def check(self):
        """Refuse settings that cannot work; Production adds its own refusals."""


class DevelopmentConfig(Config):
    NAME = "development"
    DEBUG = False  # the Werkzeug debugger is never on behind the gateway


class TestingConfig(Config):
    NAME = "testing"
    TESTING = True


class ProductionConfig(Config):
    NAME = "production"

    def __init__(self, environ=None):
        super().__init__(environ)
        self.LOG_FORMAT = "json"

    def check(self):
        problems = []
        if self.DEBUG:
            problems.append("DEBUG is on")
        if self.SECRET_KEY == DEV_SECRET:
            problems.append("SECRET_KEY is the development default; set a long random SECRET_KEY")
        if self.GATEWAY_SECRET == DEV_SECRET:
            problems.append("GATEWAY_SECRET is the development default; set a long random GATEWAY_SECRET")
        if problems:
            raise RuntimeError("refusing to start in production: " + "; ".join(problems))


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load(name=None, environ=None):
    """The config object named by ``name`` or ``APP_ENV`` (default development)."""
    name = name or _env("APP_ENV", "development", environ)
    try:
        cls = CONFIGS[name]
    except KeyError:
        raise SystemExit(f"config: APP_ENV={name!r} is unknown; use one of {', '.join(CONFIGS)}") from None
    return cls(environ)
