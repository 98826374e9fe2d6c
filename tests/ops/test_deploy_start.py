"""Each container command of docker-compose.yml, run here with the same arguments and
the same environment (stores and addresses swapped for local ones), answers its
own health check. What only Docker can do (images, networks) is left to Docker."""

import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys

import deploy_compose as dc
import pytest
import redis as redis_lib
import requests
from helpers import wait_until

from object_challenge.dev.devstores import free_port

_n = itertools.count(1)
START_TIMEOUT = 60


class Deployment:
    """The compose services as local processes, on the test stores."""

    def __init__(self, stores, tmp):
        self.compose = dc.load()
        self.services = self.compose["services"]
        self.tmp = tmp
        n = next(_n)
        tag = f"{os.getpid()}_{n}"
        self.db_names = [f"oc_deploy_{tag}", f"oc_deploy_jobs_{tag}", f"oc_deploy_data_{tag}"]
        self.ports = {name: free_port() for name in dc.GUNICORN_SERVICES}
        self.redis_url = stores.redis_url.rsplit("/", 1)[0] + "/3"
        variables = {
            "SECRET_KEY": secrets.token_urlsafe(32),
            "GATEWAY_SECRET": secrets.token_urlsafe(32),
            **dc.env_example(),
        }
        variables["SECRET_KEY"] = variables["SECRET_KEY"] or secrets.token_urlsafe(32)
        variables["GATEWAY_SECRET"] = variables["GATEWAY_SECRET"] or secrets.token_urlsafe(32)
        self.variables = variables
        # compose service name -> where it runs here
        self.replace = [(f"{name}:8000", f"127.0.0.1:{port}") for name, port in self.ports.items()]
        # each container has its own /tmp; here the services share one machine
        self.replace.append(("/tmp/oc-metrics", str(tmp / "metrics")))
        self.local = {
            "MONGO_URI": f"{stores.mongo_uri}/{self.db_names[0]}",
            "MONGO_JOB_DB": self.db_names[1],
            "MONGO_DATA_DB": self.db_names[2],
            "REDIS_URL": self.redis_url,
            "VAR_DIR": str(tmp / "var"),
        }
        self.processes = {}

    def env(self, service, stores=True, **extra):
        environment = dc.interpolate(self.services[service].get("environment", {}), self.variables)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp), "PYTHONUNBUFFERED": "1"}
        for key, value in environment.items():
            for old, new in self.replace:
                value = str(value).replace(old, new)
            env[key] = value
        if "PROMETHEUS_MULTIPROC_DIR" in env:  # each container has its own /tmp
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.tmp / "metrics" / service)
        if stores:
            env.update(self.local)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def command(self, service, port=None):
        argv = dc.interpolate(self.services[service]["command"], self.variables)
        return dc.local_command(argv, {"bind": port} if port else None, self.replace)

    def healthy(self, service, port=None, **extra):
        argv = dc.healthcheck_command(
            dc.interpolate(self.services[service], self.variables), {"bind": port} if port else None, self.replace
        )
        result = subprocess.run(
            argv, cwd=dc.ROOT, env=self.env(service, **extra), capture_output=True, text=True, timeout=30
        )
        return result.returncode == 0

    def run(self, service, **extra):
        return subprocess.run(
            self.command(service),
            cwd=dc.ROOT,
            env=self.env(service, **extra),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def manage(self, *args, service="api"):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=dc.ROOT,
            env=self.env(service),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, service, port=None, name=None, **extra):
        name = name or service
        out = open(self.tmp / f"{name}.out", "wb")
        err = open(self.tmp / f"{name}.err", "wb")
        process = subprocess.Popen(
            self.command(service, port),
            cwd=dc.ROOT,
            env=self.env(service, **extra),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def wait_healthy(self, service, port=None, name=None, **extra):
        process = self.processes[name or service]

        def ready():
            if process.poll() is not None:
                raise AssertionError(f"{name or service} exited ({process.returncode}):\n{self.logs(name or service)}")
            return self.healthy(service, port, **extra)

        wait_until(ready, timeout=START_TIMEOUT, interval=0.2, message=f"{name or service} health check")

    def logs(self, name):
        return "".join(
            (self.tmp / f"{name}.{kind}").read_text(errors="replace")
            for kind in ("out", "err")
            if (self.tmp / f"{name}.{kind}").exists()
        )

    def stop(self, name):
        process = self.processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)

    def drop(self, stores):
        import pymongo

        client = pymongo.MongoClient(stores.mongo_uri)
        for name in self.db_names:
            client.drop_database(name)
        client.close()
        redis_lib.Redis.from_url(self.redis_url).flushdb()


@pytest.fixture(scope="module")
def deployment(stores, tmp_path_factory):
    """init, then the four gunicorn services, each waited for by its own health check."""
    deployment = Deployment(stores, tmp_path_factory.mktemp("deploy"))
    redis_lib.Redis.from_url(deployment.redis_url).flushdb()
    deployment.init = deployment.run("init")
    assert deployment.init.returncode == 0, deployment.init.stdout + deployment.init.stderr
    try:
        for name in dc.GUNICORN_SERVICES:
            deployment.start(name, deployment.ports[name])
        for name in dc.GUNICORN_SERVICES:
            deployment.wait_healthy(name, deployment.ports[name])
        yield deployment
    finally:
        deployment.stop_all()
        deployment.drop(stores)


def test_init_one_shot_loads_the_production_fixtures(deployment):
    assert "snapshot published" in deployment.init.stdout
    users = deployment.manage("user", "list")
    assert users.returncode == 0 and users.stdout.strip().splitlines()[1:] == []  # no users, no known tokens
    assert "arvan" in deployment.manage("prefix", "list").stdout


@pytest.mark.parametrize("name", dc.GUNICORN_SERVICES)
def test_service_answers_its_health_check(deployment, name):
    assert deployment.healthy(name, deployment.ports[name])
    answer = requests.get(f"http://127.0.0.1:{deployment.ports[name]}/healthz", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["services"] == [name] and answer.json()["status"] == "ok"


def test_services_log_json_lines(deployment):
    requests.get(
        f"http://127.0.0.1:{deployment.ports['api']}/healthz", headers={"X-Request-Id": "rid-deploy-1"}, timeout=5
    )

    def access_line():
        for line in (deployment.tmp / "api.out").read_text().splitlines():
            entry = json.loads(line)
            if entry.get("request_id") == "rid-deploy-1":
                return entry
        return None

    entry = wait_until(access_line, timeout=10, message="the access log line")
    assert entry["path"] == "/healthz" and entry["status"] == 200 and entry["method"] == "GET"
    for name in dc.GUNICORN_SERVICES:
        for kind in ("out", "err"):
            for line in (deployment.tmp / f"{name}.{kind}").read_text().splitlines():
                assert isinstance(json.loads(line), dict), f"{name}.{kind}: {line}"
    errors = [json.loads(line) for line in (deployment.tmp / "api.err").read_text().splitlines()]
    assert any("Booting worker" in e["message"] for e in errors)


def test_worker_starts_heartbeats_and_runs_a_job(deployment):
    made = deployment.manage("user", "add", "worker", "--role", "worker")  # bound to ids "worker..."
    assert made.returncode == 0, made.stderr
    worker_token = made.stdout.split("token: ", 1)[1].split()[0]
    user = deployment.manage("user", "add", "deploy-user")
    user_token = user.stdout.split("token: ", 1)[1].split()[0]
    extra = {"WORKER_TOKEN": worker_token, "HOSTNAME": "deploytest"}
    deployment.start("worker", **extra)
    deployment.wait_healthy("worker", **extra)
    jobs_url = f"http://127.0.0.1:{deployment.ports['jobs']}/newapi"
    job = requests.post(
        f"{jobs_url}/queue",
        json={"job_title": "hello", "tasks": [{"module": "echo", "data": {}}]},
        headers={"Authorization": f"Token {user_token}"},
        timeout=5,
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]

    def finished():
        answer = requests.get(
            f"{jobs_url}/jobs/{job_id}", headers={"Authorization": f"Token {worker_token}"}, timeout=5
        ).json()
        return answer if answer.get("state") in ("completed", "failed") else None

    done = wait_until(finished, timeout=30, interval=0.2, message="the job to finish")
    assert done["state"] == "completed" and done["worker_id"] == "worker-deploytest"
    assert deployment.processes["worker"].poll() is None
    deployment.stop("worker")
    assert_json_lines(deployment, "worker")


def test_scheduler_starts_and_does_its_work(deployment):
    from object_challenge.core import keys

    deployment.start("scheduler")
    deployment.wait_healthy("scheduler")
    red = redis_lib.Redis.from_url(deployment.redis_url)
    red.delete(keys.GW_VERSION)
    wait_until(lambda: red.exists(keys.GW_VERSION), timeout=15, message="the scheduler to republish the snapshot")
    assert deployment.processes["scheduler"].poll() is None
    deployment.stop("scheduler")
    assert_json_lines(deployment, "scheduler")


def assert_json_lines(deployment, name):
    lines = [line for kind in ("out", "err") for line in (deployment.tmp / f"{name}.{kind}").read_text().splitlines()]
    assert lines, f"{name} logged nothing"
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except ValueError:
            raise AssertionError(f"{name} logged a line that is not JSON: {line}") from None


def test_production_service_refuses_to_start_with_fixture_tokens(stores, tmp_path):
    deployment = Deployment(stores, tmp_path)
    try:
        loaded = deployment.manage("init")  # the repository's fixtures: token_1, ...
        assert loaded.returncode == 0, loaded.stderr
        port = free_port()
        process = deployment.start("api", port)
        wait_until(lambda: process.poll() is not None, timeout=START_TIMEOUT, message="the refusal")
        assert process.returncode != 0
        logs = deployment.logs("api")
        assert "refusing to start in production" in logs and "rotate-token" in logs
        # the same command with every fixture token rotated starts
        for name in ("a", "b", "c", "worker", "admin"):
            assert deployment.manage("user", "rotate-token", name).returncode == 0
        deployment.start("api", port)
        deployment.wait_healthy("api", port)
    finally:
        deployment.stop_all()
        deployment.drop(stores)


# -- the gateway's config step --------------------------------------------------


def _render_like_compose(deployment, conf_dir, **extra):
    service = deployment.services["gateway-config"]
    argv = dc.interpolate(service["command"], deployment.variables)
    argv = dc.local_command(argv, None, [*deployment.replace, ("/conf", str(conf_dir))])
    env = deployment.env("gateway-config", stores=False, **extra)  # REDIS_URL as compose sets it
    return subprocess.run(argv, cwd=dc.ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_gateway_config_step_renders_the_openresty_flavour(stores, tmp_path):
    deployment = Deployment(stores, tmp_path)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    # in compose the services are named; keep the names (nothing resolves them here)
    deployment.replace = []
    result = _render_like_compose(deployment, conf_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (conf_dir / "conf" / "nginx.conf").read_text()
    assert "load_module" not in text  # openresty has the lua module built in
    assert f'lua_package_path "{conf_dir}/lua/?.lua;' in text
    assert (conf_dir / "lua" / "oc" / "gateway.lua").is_file()
    for name in ("api", "jobs", "publish", "storage"):
        assert f"server {name}:8000;" in text
    assert "listen 0.0.0.0:8080" in text
    redis_ip = deployment.variables["OC_REDIS_IP"]
    assert f'"host":"{redis_ip}"' in text  # an address: nginx resolves no names at run time
    assert os.readlink(conf_dir / "logs" / "access.log") == "/dev/stdout"
    assert os.readlink(conf_dir / "logs" / "error.log") == "/dev/stderr"
    assert compose_volume_mounts(deployment) == {"gateway": "/conf", "gateway-config": "/conf"}


def _debianize(conf_dir):
    """The openresty conf made loadable by Debian's nginx: load the lua module, add
    Debian's lua-resty-core path. Nothing else changes. Returns the conf path."""
    conf = conf_dir / "conf" / "nginx.conf"
    text = conf.read_text()
    debian = (
        "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
        "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
    )
    assert "# openresty: the lua module is built in" in text
    text = text.replace("# openresty: the lua module is built in", debian)
    text = text.replace(
        f'lua_package_path "{conf_dir}/lua/?.lua;;"',
        f'lua_package_path "{conf_dir}/lua/?.lua;/usr/share/lua/5.1/?.lua;;"',
    )
    conf.write_text(text)
    return conf


def compose_volume_mounts(deployment):
    return {
        name: m.split(":")[1]
        for name, s in deployment.services.items()
        for m in s.get("volumes", [])
        if m.startswith("gateway-conf:")
    }


@pytest.mark.skipif(not shutil.which("nginx"), reason="Debian's nginx is not installed")
def test_rendered_gateway_conf_passes_nginx_t(stores, tmp_path):
    """The openresty conf and its copied Lua, loaded by Debian's nginx + lua module (`nginx -t`).

    Upstream names are swapped for local addresses (nginx -t resolves them) and the
    lua module is loaded explicitly; everything else is the compose step's output."""
    deployment = Deployment(stores, tmp_path)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    result = _render_like_compose(deployment, conf_dir)
    assert result.returncode == 0, result.stderr
    conf = _debianize(conf_dir)
    (conf_dir / "logs" / "access.log").unlink()
    (conf_dir / "logs" / "error.log").unlink()
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(conf_dir), "-c", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


@pytest.mark.skipif(not shutil.which("nginx"), reason="Debian's nginx is not installed")
def test_debian_flavour_with_the_compose_settings_passes_nginx_t(stores, tmp_path):
    """The same settings, rendered for the local nginx (`make run`'s flavour)."""
    deployment = Deployment(stores, tmp_path)
    prefix = tmp_path / "debian"
    env = deployment.env("gateway-config", stores=False)
    rendered = subprocess.run(
        [sys.executable, "nginx/render.py", "--flavour", "debian", "--prefix", str(prefix)],
        cwd=dc.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    conf = prefix / "conf" / "nginx.conf"
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(not shutil.which("nginx"), reason="Debian's nginx is not installed")
def test_gateway_command_serves_the_deployment(deployment, tmp_path):
    """The gateway container's command on the compose step's output (made loadable by
    Debian's nginx), in front of the services above: its health check passes and a
    client's request goes through it with a token made by the operator."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    port = free_port()
    metrics_addr = f"127.0.0.1:{free_port()}"  # compose's 0.0.0.0:8086 may be taken here
    rendered = _render_like_compose(
        deployment, conf_dir, REDIS_URL=deployment.redis_url, GATEWAY_PORT=port, METRICS_ADDR=metrics_addr
    )
    assert rendered.returncode == 0, rendered.stderr
    _debianize(conf_dir)
    argv = dc.interpolate(deployment.services["gateway"]["command"], deployment.variables)
    assert argv[0].endswith("/openresty")
    argv = ["nginx", *[str(conf_dir) + a[len("/conf") :] if a.startswith("/conf") else a for a in argv[1:]]]
    out = open(tmp_path / "gateway.out", "wb")
    gateway = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        check = dc.healthcheck_command(deployment.services["gateway"])
        check = [a.replace("127.0.0.1/8080", f"127.0.0.1/{port}") for a in check]

        def healthy():
            assert gateway.poll() is None, (tmp_path / "gateway.out").read_text()
            return subprocess.run(check, capture_output=True, timeout=10).returncode == 0

        wait_until(healthy, timeout=30, interval=0.2, message="the gateway's health check")
        made = deployment.manage("user", "add", "gateway-client")
        token = made.stdout.split("token: ", 1)[1].split()[0]
        url = f"http://127.0.0.1:{port}"
        answer = requests.post(
            f"{url}/bucket", json={"bucket": "deployed-bucket"}, headers={"Authorization": f"Token {token}"}, timeout=10
        )
        assert answer.status_code == 201, answer.text
        who = requests.get(f"{url}/newapi/whoami", headers={"Authorization": f"Token {token}"}, timeout=10)
        assert who.status_code == 200 and who.json()["name"] == "gateway-client"
        assert requests.post(f"{url}/bucket", json={"bucket": "x-bucket"}, timeout=10).status_code == 401

        def access_line():  # the access log goes to the container's stdout, as JSON
            for line in (tmp_path / "gateway.out").read_text().splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("uri") == "/bucket" and entry.get("status") == 201:
                        return entry
            return None

        wait_until(access_line, timeout=10, message="the gateway's JSON access line")
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
