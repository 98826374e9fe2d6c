"""The whole local stack in one supervisor: ``make run`` and the gateway tests.

Starts, in order: the stores (mongoeco wire server, redis-server; skipped when
``MONGO_URI`` / ``REDIS_URL`` name real servers), ``manage.py init``, the
gunicorn services (api, jobs, publish, storage), the scheduler and the
worker(s), then the gateway (Debian's nginx with the lua module, conf rendered
by ``nginx/render.py``). Stops all of them, in reverse, on Ctrl-C / SIGTERM.

It is a supervisor: a child that dies (any of them, e.g. ``kill -9``) is
restarted with the same arguments after a backoff (0.25 s, doubling to at most
4 s; reset once the child has run for 30 s), and each exit and restart is logged
to ``var/run/logs/stack.log`` (and the terminal). Redis keeps an append-only
file under ``var/redis/``; when Redis comes back empty anyway, the scheduler
notices (ops/recovery.py) and recovers jobs and puzzles from MongoDB.

    python -m object_challenge.dev.devstack run
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from object_challenge.core import config as config_module
from object_challenge.dev.devstores import free_port, start_mongo, start_redis, wait_for_port

ROOT = config_module.ROOT
SERVICES = ("api", "jobs", "publish", "storage")
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'  # deployment/gunicorn.conf.py
BACKOFF_FIRST = 0.25  # s before the first restart of a child
BACKOFF_MAX = 4.0  # s at most between restarts (a dead child is back within 5 s)
BACKOFF_RESET = 30.0  # s a child must run before its backoff starts again from BACKOFF_FIRST


def _port(addr):
    return int(addr.rsplit(":", 1)[1])


def isolated_env(**overrides):
    """The current environment for a Stack on free ports of its own (tests, benchmarks):
    its own stores and services, beside a running `make run` or another stack."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "REDIS_URL", "REDIS_URI", "APP_ENV")}
    env.update({"GATEWAY_PORT": str(free_port()), "MONGO_PORT": str(free_port()), "REDIS_PORT": str(free_port())})
    for name in SERVICES:
        env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    env["PLAYER_API_ADDR"] = f"127.0.0.1:{free_port()}"
    env["METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


_ADD_USERS = """
import sys
from object_challenge.accounts import service as accounts
from object_challenge.app import create_app
from object_challenge.accounts.models import User
with create_app().app_context():
    for name in sys.argv[1:]:
        if not User.objects(name=name).first():
            accounts.add_user(name, "user", "tok_" + name)
"""


class Stack:
    def __init__(self, env=None, var_dir=None, mongo_file=True, quiet=False, workers=None, runners=None):
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.external_mongo, self.external_redis = config_module.external_stores(self.env)
        self.settings = config_module.settings_from_env(self.env)
        self.var = Path(var_dir or self.settings["VAR_DIR"]) / "run"
        self.logs = self.var / "logs"  # every log of the stack (nginx's too)
        self.access_log = self.logs / "nginx-access.log"  # the gateway's JSON access lines
        self.mongo_file = mongo_file
        self.quiet = quiet
        self.workers = self.settings["WORKERS"] if workers is None else workers
        self.runners = self.settings["RUNNERS"] if runners is None else runners
        self.campaign_workers = self.settings["CAMPAIGN_WORKERS"]  # workers declaring `players`
        self.processes = []  # (name, Popen), in start order
        self.starters = {}  # name -> callable that starts it again (the supervisor's restart)
        self.restarts = {}  # name -> [failures in a row, restart due at (monotonic) or None, started at]
        self.lock = threading.RLock()
        self._supervising = None  # the background supervisor thread (tests), see supervise()
        self._stopping = threading.Event()

    # -- helpers ---------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.settings['GATEWAY_PORT']}"

    def say(self, message):
        if not self.quiet:
            print(f"[stack] {message}", flush=True)

    def _log(self, name):
        self.logs.mkdir(parents=True, exist_ok=True)
        return open(self.logs / f"{name}.log", "ab", buffering=0)

    def event(self, message):
        """A supervisor event: always in logs/stack.log, on the terminal unless quiet."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "stack.log", "a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        self.say(message)

    def _add(self, name, starter):
        """Start a child and remember how, so that the supervisor can start it again."""
        process = starter()
        with self.lock:
            self.starters[name] = starter
            self.restarts[name] = [0, None, time.monotonic()]
            self.processes.append((name, process))
        return process

    def _spawn(self, name, args, env=None, prepare=None, **kw):
        """Start ``args`` as child ``name``; ``prepare()`` runs before each (re)start."""

        def starter():
            if prepare is not None:
                prepare()
            return subprocess.Popen(
                args,
                cwd=ROOT,
                env=dict(env if env is not None else self.env),
                stdout=self._log(name),
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kw,
            )

        return self._add(name, starter)

    # -- the supervisor ----------------------------------------------------
    def supervise_once(self):
        """Restart the children that died (after their backoff); returns the names restarted."""
        restarted = []
        now = time.monotonic()
        with self.lock:
            for index, (name, process) in enumerate(list(self.processes)):
                state = self.restarts.get(name)
                if state is None or self._stopping.is_set():
                    continue
                if process.poll() is None:
                    if state[0] and now - state[2] >= BACKOFF_RESET:
                        state[0] = 0
                    continue
                if state[1] is None:
                    _kill_group(process)  # what it leaves behind: gunicorn or nginx workers
                    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** state[0])
                    state[0] += 1
                    state[1] = now + delay
                    self.event(f"{name} exited ({process.returncode}); restarting in {delay:g} s")
                if now < state[1]:
                    continue
                try:
                    fresh = self.starters[name]()
                except Exception as exc:  # e.g. the binary is gone: try again after the next backoff
                    state[1] = None
                    self.event(f"{name} could not be restarted: {exc}")
                    continue
                self.processes[index] = (name, fresh)
                state[1], state[2] = None, time.monotonic()
                self.event(f"{name} restarted (pid {fresh.pid}; {state[0]} in a row)")
                restarted.append(name)
        return restarted

    def supervise(self, interval=0.2):
        """Keep supervising in a background thread until stop() (tests; ``run`` loops itself)."""

        def loop():
            while not self._stopping.wait(interval):
                self.supervise_once()

        self._supervising = threading.Thread(target=loop, name="stack-supervisor", daemon=True)
        self._supervising.start()
        return self

    def pid(self, name):
        with self.lock:
            return dict(self.processes)[name].pid

    def manage(self, *args, check=True, timeout=60):
        """Run ``python manage.py ARGS`` against this stack; returns the CompletedProcess."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def add_users(self, names, timeout=300):
        """Create users (role user, token ``tok_<name>``) in one process; existing ones are kept.

        For tests and benchmarks that need many players: one ``manage.py user add``
        per user would start a Python process each.
        """
        subprocess.run(
            [sys.executable, "-c", _ADD_USERS, *names],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    # -- the parts -------------------------------------------------------
    def start_stores(self):
        if not self.external_mongo:
            port = self.settings["MONGO_PORT"]
            path = self.var.parent / "mongo.sqlite3" if self.mongo_file else None
            process = self._add("mongo", lambda port=port, path=path: start_mongo(port, path, self._log("mongo")))
            wait_for_port(port, process=process, what="mongoeco")
            self.env["MONGO_URI"] = self.settings["MONGO_URI"]
            self.say(f"mongo    {self.settings['MONGO_URI']} ({path or 'memory'})")
        if not self.external_redis:
            port = self.settings["REDIS_PORT"]
            workdir = self.var.parent / "redis"  # the append-only file, like var/mongo.sqlite3
            process = self._add(
                "redis", lambda port=port, workdir=workdir: start_redis(port, workdir, self._log("redis"), persist=True)
            )
            wait_for_port(port, process=process, what="redis-server")
            self.env["REDIS_URL"] = self.settings["REDIS_URL"]
            self.say(f"redis    {self.settings['REDIS_URL']} (append-only file in {workdir})")

    def load_fixtures(self):
        result = self.manage("init")
        self.say("init     " + " | ".join(line.strip() for line in result.stdout.splitlines()))

    def start_services(self):
        cpu = os.cpu_count() or 2
        workers = str(self.settings["GUNICORN_WORKERS"] or min(cpu, 2))
        for name in SERVICES:
            addr = self.settings[f"{name.upper()}_ADDR"]
            # prometheus-client's multiprocess files: one empty directory per service (each start)
            metrics_dir = self.var / "metrics" / name
            self._spawn(
                name,
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--no-control-socket",
                    "-b",
                    addr,
                    "-w",
                    workers,
                    "-k",
                    "gthread",
                    "--threads",
                    "8",
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "5",
                    # one access line per request, with its request id (as in production)
                    "--access-logfile",
                    "-",
                    "--access-logformat",
                    ACCESS_LOG_FORMAT,
                    f"object_challenge.wsgi:{name}",
                ],
                env={**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                prepare=lambda metrics_dir=metrics_dir: _empty_dir(metrics_dir),
            )
        for name in SERVICES:
            addr = self.settings[f"{name.upper()}_ADDR"]
            wait_for_port(_port(addr), process=dict(self.processes)[name], what=f"service {name}")
            self.say(f"{name:<8} http://{addr}")

    def start_background(self):
        self._spawn("scheduler", [sys.executable, "manage.py", "scheduler"])
        self.say("scheduler started")
        for n in range(self.workers):
            self._spawn(
                f"worker-{n + 1}", [sys.executable, "manage.py", "worker", "--worker-id", f"local-worker-{n + 1}"]
            )
        if self.workers:
            self.say(f"workers  {self.workers} on queue '{self.settings['REDIS_QUEUE_NAME']}'")
        self.start_runners()
        self.start_campaigns()

    def start_campaigns(self):
        """The player API stand-in on PLAYER_API_ADDR and workers declaring `players` on queue campaigns."""
        standin = self._spawn("playerapi", [sys.executable, "-m", "object_challenge.campaigns.playerapi"])
        wait_for_port(_port(self.settings["PLAYER_API_ADDR"]), process=standin, what="player API")
        self.say(f"player API stand-in on http://{self.settings['PLAYER_API_ADDR']}")
        argv = [sys.executable, "manage.py", "worker", "--queue", "campaigns", "--modules", "players"]
        for n in range(self.campaign_workers):
            self._spawn(
                f"campaigns-{n + 1}", [*argv, "--worker-id", f"local-campaigns-{n + 1}", "--poll-interval", "0.2"]
            )
        if self.campaign_workers:
            self.say(f"campaign workers {self.campaign_workers} on queue 'campaigns' (players)")

    def start_runners(self):
        """Workers declaring only run_program on the runs queue (issue 14)."""
        queue = self.settings["RUNS_QUEUE"]
        for n in range(self.runners):
            argv = [sys.executable, "manage.py", "worker", "--queue", queue, "--modules", "run_program"]
            self._spawn(f"runner-{n + 1}", [*argv, "--worker-id", f"local-runner-{n + 1}", "--poll-interval", "0.2"])
        if self.runners:
            self.say(f"runners  {self.runners} on queue '{queue}' (run_program)")

    def render_gateway(self):
        prefix = self.var / "nginx"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "nginx" / "render.py"),
                "--flavour",
                "debian",
                "--prefix",
                str(prefix),
                # every log of the stack in one directory (logs/nginx.log: nginx's errors)
                "--access-log",
                str(self.access_log),
                "--error-log",
                str(self.logs / "nginx.log"),
            ],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return prefix

    def start_gateway(self):
        prefix = self.render_gateway()
        conf = prefix / "conf" / "nginx.conf"
        self._spawn("nginx", ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
        wait_for_port(self.settings["GATEWAY_PORT"], process=dict(self.processes)["nginx"], what="nginx")
        self.say(f"gateway  {self.url}")

    def stop_process(self, name):
        with self.lock:
            for entry in list(self.processes):
                if entry[0] == name:
                    _terminate([entry])
                    self.processes.remove(entry)
                    self.restarts.pop(name, None)

    def restart_gateway(self, **env):
        """Re-render and restart nginx with changed settings (tests of limits etc.)."""
        self.stop_process("nginx")
        for key, value in env.items():
            self.env[key] = str(value)
        self.settings = config_module.settings_from_env(self.env)
        self.start_gateway()

    def ports(self):
        """``{port: what}`` for every port this stack binds on 127.0.0.1."""
        wanted = {self.settings["GATEWAY_PORT"]: "the gateway (GATEWAY_PORT)"}
        for name in SERVICES:
            wanted[_port(self.settings[f"{name.upper()}_ADDR"])] = f"the {name} service ({name.upper()}_ADDR)"
        wanted[_port(self.settings["PLAYER_API_ADDR"])] = "the player API stand-in (PLAYER_API_ADDR)"
        if not self.external_mongo:
            wanted[self.settings["MONGO_PORT"]] = "the MongoDB stand-in (MONGO_PORT)"
        if not self.external_redis:
            wanted[self.settings["REDIS_PORT"]] = "redis-server (REDIS_PORT)"
        return wanted

    def check_ports(self):
        """Refuse to start beside something already on our ports: a second `make run` would
        otherwise talk to the first one's stores and fight it for the rest."""
        taken = []
        for port, what in sorted(self.ports().items()):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    taken.append(f"{port} ({what})")
        if taken:
            raise RuntimeError(
                "ports already in use: " + ", ".join(taken) + ". Another `make run` (or a test stack) is running: "
                "stop it, or choose other ports: GATEWAY_PORT=9080 MONGO_PORT=27028 REDIS_PORT=6390 make run "
                "(the services and the stand-in follow GATEWAY_PORT unless their own *_ADDR are set)"
            )

    def start(self):
        self.var.mkdir(parents=True, exist_ok=True)
        try:
            self.check_ports()
            self.start_stores()
            self.load_fixtures()
            self.start_services()
            self.start_background()
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self._stopping.set()
        if self._supervising is not None:
            self._supervising.join(timeout=5)
        with self.lock:
            _terminate(list(reversed(self.processes)))
            self.processes.clear()

    def dead(self):
        return [(name, p.returncode) for name, p in self.processes if p.poll() is not None]


def _empty_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(entries, grace=8.0):
    for _name, process in entries:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for _name, process in entries:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def run():
    stack = Stack()
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except Exception as exc:
        print(f"[stack] could not start: {exc}\n[stack] logs are in {stack.logs}", file=sys.stderr)
        return 1
    stack.say(
        f"ready: try  curl -s -X POST {stack.url}/bucket -H 'Authorization: Token token_1' "
        f'-d \'{{"bucket": "test1"}}\''
    )
    stack.say(f"logs in {stack.logs}; Ctrl-C stops everything")
    while not stopping:
        stack.supervise_once()  # a child that died is restarted (and logged)
        time.sleep(0.2)
    stack.say("stopping ...")
    stack.stop()
    stack.say("stopped")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        sys.exit("usage: python -m object_challenge.dev.devstack run")
    sys.exit(run())
