"""What can be checked of the compose deployment without a Docker engine."""

import re
import shlex
import subprocess
import sys

import deploy_compose as dc
import pytest

from object_challenge.app import SERVICES


@pytest.fixture(scope="module")
def compose():
    return dc.load()


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def _commands(service):
    """Every argv the service runs: its command and its health check."""
    found = [service["command"]] if "command" in service else []
    test = service.get("healthcheck", {}).get("test")
    if test and test[0] == "CMD":
        found.append(test[1:])
    elif test and test[0] == "CMD-SHELL":
        found.append(["sh", "-c", test[1]])
    return found


def _python_argvs(argv):
    """The python / gunicorn command lines inside an argv (unwrapping ``sh -c "... && ..."``)."""
    if argv[:2] == ["sh", "-c"]:
        parts = [shlex.split(part) for part in re.split(r"&&|;", argv[2])]
        parts = [p[1:] if p and p[0] == "exec" else p for p in parts]
        return [p for p in parts if p and p[0] in ("python", "gunicorn")]
    return [argv] if argv and argv[0] in ("python", "gunicorn") else []


def test_every_service_is_there(services):
    assert set(services) == dc.LONG_RUNNING | dc.ONE_SHOTS


def test_every_long_running_service_has_a_health_check(services):
    for name in dc.LONG_RUNNING:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_one_shots_run_once_and_are_waited_for(services):
    for name in dc.ONE_SHOTS:
        assert services[name]["restart"] == "no"
    waited = {dep: cond["condition"] for svc in services.values() for dep, cond in svc.get("depends_on", {}).items()}
    assert waited["init"] == "service_completed_successfully"
    assert waited["gateway-config"] == "service_completed_successfully"
    assert services["gateway"]["depends_on"]["gateway-config"]["condition"] == "service_completed_successfully"


def test_depends_on_waits_for_health(services):
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, cond in deps.items():
            wanted = "service_completed_successfully" if dep in dc.ONE_SHOTS else "service_healthy"
            assert cond["condition"] == wanted, f"{name} -> {dep}"
    for name in ("api", "jobs", "publish", "storage", "worker", "campaigns", "scheduler", "init"):
        assert services[name]["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_campaigns_worker_takes_only_player_batches_and_reaches_the_player_api(services):
    campaigns = services["campaigns"]
    argv = _python_argvs(campaigns["command"])[0]
    assert argv[argv.index("--queue") + 1] == "campaigns" and argv[argv.index("--modules") + 1] == "players"
    assert "edge" in campaigns["networks"] and "backend" in campaigns["networks"]  # the API is outside
    assert {"PLAYER_API_URL", "PLAYER_API_KEYS", "PLAYER_SOURCE_RPS", "WORKER_TOKEN"} <= set(campaigns["environment"])
    assert campaigns["depends_on"]["jobs"]["condition"] == "service_healthy"


def test_only_the_gateway_publishes_a_port(services):
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    assert not any(service.get("network_mode") == "host" for service in services.values())


def test_data_lives_in_named_volumes(compose, services):
    declared = set(compose["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            if source.startswith("./") and mount.endswith(":ro"):
                assert (dc.COMPOSE.parent / source).is_file(), f"{name} mounts {source!r}, which is not in deployment/"
                continue  # a config file of deployment/, read-only (prometheus.yml)
            assert source in declared, f"{name} mounts {source!r}, not a named volume"
    targets = {name: {m.split(":")[1] for m in s.get("volumes", [])} for name, s in services.items()}
    assert "/data/db" in targets["mongo"]
    assert "/data" in targets["redis"]
    assert "/conf" in targets["gateway"] and "/conf" in targets["gateway-config"]


def test_mongo_is_a_replica_set_of_one(services):
    mongo = services["mongo"]
    assert "--replSet" in mongo["command"]
    replset = mongo["command"][mongo["command"].index("--replSet") + 1]
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
    assert f"_id: '{replset}'" in " ".join(mongo["healthcheck"]["test"])
    for name in ("api", "jobs", "publish", "storage", "worker", "scheduler", "init"):
        assert f"replicaSet={replset}" in services[name]["environment"]["MONGO_URI"]
    assert mongo["image"].startswith("mongo:")


def test_redis_keeps_an_append_only_file(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"  # queue state is not a cache


def test_gateway_is_openresty_on_the_rendered_conf(services):
    gateway = services["gateway"]
    assert gateway["image"].startswith("openresty/openresty:")
    assert "/conf/conf/nginx.conf" in gateway["command"]
    render = services["gateway-config"]["command"][2]
    assert "nginx/render.py --flavour openresty --prefix /conf" in render


def test_every_environment_variable_is_one_config_reads():
    keys = dc.config_keys()
    assert {"MONGO_URI", "REDIS_URL", "SECRET_KEY", "GATEWAY_SECRET", "APP_ENV"} <= keys
    for data in (dc.load(), dc.load(with_override=True)):
        for name, service in data["services"].items():
            for var in service.get("environment", {}):
                assert var in keys, f"{name} sets {var}, which object_challenge/core/config.py never reads"


def test_env_example_documents_every_variable_the_compose_files_use():
    example = dc.env_example()
    keys = dc.config_keys()
    for key in example:
        assert key in keys or dc.COMPOSE_ONLY.match(key), f".env.example: {key} is read by nothing"
    used = dc.referenced_variables(dc.load(with_override=True))
    assert used <= set(example), f"not in .env.example: {sorted(used - set(example))}"
    # secrets are never given a usable value in the example
    assert example["SECRET_KEY"] == "" and example["GATEWAY_SECRET"] == "" and example["WORKER_TOKEN"] == ""


def test_secrets_are_required_not_defaulted(services):
    env = services["api"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["GATEWAY_SECRET"].startswith("${GATEWAY_SECRET:?")
    with pytest.raises(KeyError, match="SECRET_KEY"):
        dc.interpolate(env, {"GATEWAY_SECRET": "x"})


def test_gunicorn_entry_points_exist(services):
    for name in dc.GUNICORN_SERVICES:
        command = services[name]["command"]
        assert command[0] == "gunicorn"
        module, _, attr = command[-1].partition(":")
        assert module == "object_challenge.wsgi" and attr == name and attr in SERVICES
        config = command[command.index("-c") + 1]
        assert (dc.ROOT / config).is_file()
    import object_challenge.wsgi as wsgi

    assert callable(wsgi.__getattr__)


def test_every_python_command_is_a_real_entry_point(services):
    """Each manage.py command line parses (``--help`` after the same options), each script exists."""
    checked = 0
    for name, service in services.items():
        for argv in _commands(service):
            for command in _python_argvs(argv):
                if command[0] == "gunicorn":
                    continue
                script = command[1]
                assert (dc.ROOT / script).is_file(), f"{name}: {script} does not exist"
                if script == "manage.py":
                    args = [a.replace("${HOSTNAME}", "x") for a in command[2:]]
                    result = subprocess.run(
                        [sys.executable, "manage.py", *args, "--help"],
                        cwd=dc.ROOT,
                        capture_output=True,
                        text=True,
                        timeout=60,
                        env={"PATH": "/usr/bin:/bin", "APP_ENV": "testing"},
                    )
                    assert result.returncode == 0, f"{name}: manage.py {' '.join(args)}: {result.stderr}"
                    checked += 1
                elif script == "deployment/healthcheck.py":
                    assert command[2] in ("http", "stores", "worker"), f"{name}: {command}"
                elif script == "nginx/render.py":
                    assert command[command.index("--flavour") + 1] == "openresty"
    assert checked >= 3  # init, worker, scheduler


def test_dockerfile_builds_a_slim_non_root_image_without_secrets():
    text = (dc.DEPLOYMENT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.13-slim\b", text, re.M)
    assert "requirements/prod.txt" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    for line in re.findall(r"^(?:ENV|ARG)\s+.*$", text, re.M):
        assert not re.search(r"SECRET|TOKEN|PASSWORD", line), line
    ignore = (dc.DEPLOYMENT / "Dockerfile.dockerignore").read_text().split()
    assert "deployment/.env" in ignore and ".git" in ignore


def test_override_is_development_only(services):
    dev = dc.load(with_override=True)["services"]
    assert dev["api"]["environment"]["APP_ENV"] == "development"
    assert services["api"]["environment"]["APP_ENV"] == "production"
    for name in dc.LONG_RUNNING | dc.ONE_SHOTS:
        assert dev[name].get("healthcheck") == services[name].get("healthcheck")
    assert {n for n, s in dev.items() if s.get("ports")} == {"gateway", "mongo", "redis"}
    for name in ("mongo", "redis"):
        assert all(p.startswith("127.0.0.1:") for p in dev[name]["ports"])


def test_gunicorn_workers_follow_the_cpu_count(monkeypatch):
    import runpy

    monkeypatch.delenv("GUNICORN_WORKERS", raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    conf = runpy.run_path(str(dc.DEPLOYMENT / "gunicorn.conf.py"))
    assert conf["workers"] == 2 * conf["cpu_count"]() + 1
    assert conf["logconfig_dict"]["formatters"]["json"]
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    assert runpy.run_path(str(dc.DEPLOYMENT / "gunicorn.conf.py"))["workers"] == 3
