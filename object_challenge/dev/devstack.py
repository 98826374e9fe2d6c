"""The whole local stack in one supervisor: ``make run`` and the gateway tests.

Starts, in order: the stores (mongoeco wire server, redis-server; skipped when
``MONGO_URI`` / ``REDIS_URL`` name real servers), ``manage.py init``, the
gunicorn services (api, jobs, publish, storage), the scheduler and the
worker(s), then the gateway (Debian's nginx with the lua module, conf rendered
by ``nginx/render.py``). Stops all of them, in reverse, on Ctrl-C / SIGTERM.

    python -m object_challenge.dev.devstack run
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from object_challenge.core import config as config_module
from object_challenge.dev.devstores import start_mongo, start_redis, wait_for_port

ROOT = config_module.ROOT
SERVICES = ("api", "jobs", "publish", "storage")


def _port(addr):
    return int(addr.rsplit(":", 1)[1])


def isolated_env(**overrides):
    """The current environment for a Stack on free ports of its own (tests, benchmarks):
    its own stores and services, beside a running `make run` or another stack."""
    from object_challenge.dev.devstores import free_port

    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "REDIS_URL", "REDIS_URI", "APP_ENV")}
    env.update({"GATEWAY_PORT": str(free_port()), "MONGO_PORT": str(free_port()), "REDIS_PORT": str(free_port())})
    for name in SERVICES:
        env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
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
        self.external_mongo = bool(self.env.get("MONGO_URI"))
        self.external_redis = bool(self.env.get("REDIS_URL") or self.env.get("REDIS_URI"))
        self.settings = config_module.settings_from_env(self.env)
        self.var = Path(var_dir or self.settings["VAR_DIR"]) / "run"
        self.logs = self.var / "logs"
        self.mongo_file = mongo_file
        self.quiet = quiet
        self.workers = int(self.env.get("WORKERS", "1")) if workers is None else workers
        self.runners = int(self.env.get("RUNNERS", "1")) if runners is None else runners
        self.processes = []  # (name, Popen), in start order

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

    def _spawn(self, name, args, env=None, **kw):
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env,
            stdout=self._log(name),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,
        )
        self.processes.append((name, process))
        return process

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
            self.processes.append(("mongo", start_mongo(port, path, self._log("mongo"))))
            wait_for_port(port, process=self.processes[-1][1], what="mongoeco")
            self.env["MONGO_URI"] = self.settings["MONGO_URI"]
            self.say(f"mongo    {self.settings['MONGO_URI']} ({path or 'memory'})")
        if not self.external_redis:
            port = self.settings["REDIS_PORT"]
            self.processes.append(("redis", start_redis(port, self.var / "redis", self._log("redis"))))
            wait_for_port(port, process=self.processes[-1][1], what="redis-server")
            self.env["REDIS_URL"] = self.settings["REDIS_URL"]
            self.say(f"redis    {self.settings['REDIS_URL']}")

    def load_fixtures(self):
        result = self.manage("init")
        self.say("init     " + " | ".join(line.strip() for line in result.stdout.splitlines()))

    def start_services(self):
        cpu = os.cpu_count() or 2
        workers = str(self.settings["GUNICORN_WORKERS"] or min(cpu, 2))
        for name in SERVICES:
            addr = self.settings[f"{name.upper()}_ADDR"]
            # prometheus-client's multiprocess files: one empty directory per service
            metrics_dir = self.var / "metrics" / name
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
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
                    f"object_challenge.wsgi:{name}",
                ],
                env={**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
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
            [sys.executable, str(ROOT / "nginx" / "render.py"), "--flavour", "debian", "--prefix", str(prefix)],
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
        for entry in list(self.processes):
            if entry[0] == name:
                _terminate([entry])
                self.processes.remove(entry)

    def restart_gateway(self, **env):
        """Re-render and restart nginx with changed settings (tests of limits etc.)."""
        self.stop_process("nginx")
        for key, value in env.items():
            self.env[key] = str(value)
        self.settings = config_module.settings_from_env(self.env)
        self.start_gateway()

    def start(self):
        self.var.mkdir(parents=True, exist_ok=True)
        try:
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
        _terminate(list(reversed(self.processes)))
        self.processes.clear()

    def dead(self):
        return [(name, p.returncode) for name, p in self.processes if p.poll() is not None]


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
    code = 0
    while not stopping:
        dead = stack.dead()
        if dead:
            stack.say(f"stopping: {', '.join(f'{n} exited ({c})' for n, c in dead)}; see {stack.logs}")
            code = 1
            break
        time.sleep(0.2)
    stack.say("stopping ...")
    stack.stop()
    stack.say("stopped")
    return code


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        sys.exit("usage: python -m object_challenge.dev.devstack run")
    sys.exit(run())
