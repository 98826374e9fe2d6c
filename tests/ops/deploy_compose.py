"""Reading deployment/docker-compose.yml the way docker compose would, without Docker.

- ``load()``: the YAML (anchors and merge keys resolved by PyYAML), optionally with
  the development override merged on top;
- ``interpolate(value, variables)``: compose's ``${VAR}``, ``${VAR:-default}``,
  ``${VAR:?message}`` and ``$$`` rules;
- ``config_keys()``: every environment variable config.py reads;
- ``local_command(argv, ...)``: a container command rewritten to run here (the
  venv's python, local addresses instead of compose service names).
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "deployment"
COMPOSE = DEPLOYMENT / "docker-compose.yml"
OVERRIDE = DEPLOYMENT / "docker-compose.override.yml"
ENV_EXAMPLE = DEPLOYMENT / ".env.example"

# started once, run to completion before the others start
ONE_SHOTS = {"init", "gateway-config"}
LONG_RUNNING = {
    "gateway",
    "api",
    "jobs",
    "publish",
    "storage",
    "worker",
    "campaigns",
    "runner",
    "scheduler",
    "mongo",
    "redis",
    "prometheus",
}
GUNICORN_SERVICES = ("api", "jobs", "publish", "storage")
# variables only docker compose itself reads (interpolation, COMPOSE_*), never a container
COMPOSE_ONLY = re.compile(r"^(COMPOSE_[A-Z_]+|OC_[A-Z_]+)$")

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def load(with_override=False):
    data = yaml.safe_load(COMPOSE.read_text())
    if with_override:
        data = merge(data, yaml.safe_load(OVERRIDE.read_text()))
    return data


def merge(base, extra):
    """Compose's merge for what these files use: mappings merge, lists of mounts by target."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return base + [item for item in extra if item not in base]
    return extra


def referenced_variables(data):
    """Names used as ``${NAME...}`` / ``$NAME`` in a compose file's values ($$ excluded)."""
    if isinstance(data, dict):
        return set().union(*(referenced_variables(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(referenced_variables(v) for v in data)) if data else set()
    if isinstance(data, str):
        return {m.group(1) or m.group(4) for m in _VARIABLE.finditer(data) if m.group(0) != "$$"}
    return set()


def interpolate(value, variables):
    """A string, list or mapping with compose's variable rules applied."""
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def replace(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        current = variables.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if unset else current
        if op in ("?", ":?"):
            if unset:
                raise KeyError(f"{name}: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(replace, value)


def config_keys():
    """Every environment variable config.py reads (``_env/_int/_float/_bool("NAME"``)."""
    source = (ROOT / "object_challenge" / "core" / "config.py").read_text()
    return set(re.findall(r"_(?:env|int|float|bool)\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def env_example():
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def local_command(argv, ports=None, replace=()):
    """A container command to run here: ``python``/``gunicorn`` from this venv,
    ``0.0.0.0:8000`` / ``127.0.0.1:8000`` on ``ports["bind"]``, and each ``(old, new)``
    of ``replace`` applied to every argument (compose names -> local addresses)."""
    out = []
    for arg in argv:
        for old, new in replace:
            arg = arg.replace(old, new)
        if ports and "bind" in ports:
            arg = arg.replace("0.0.0.0:8000", f"127.0.0.1:{ports['bind']}")
            arg = arg.replace("127.0.0.1:8000", f"127.0.0.1:{ports['bind']}")
        out.append(arg)
    if out and out[0] == "gunicorn":
        out = [sys.executable, "-m", "gunicorn", *out[1:]]
    elif out and out[0] == "python":
        out = [sys.executable, *out[1:]]
    elif out[:2] == ["sh", "-c"]:
        out[2] = re.sub(r"(^|&& |exec )python ", lambda m: f"{m.group(1)}{sys.executable} ", out[2])
    return out


def healthcheck_command(service, ports=None, replace=()):
    """The service's health check as an argv to run here."""
    test = service["healthcheck"]["test"]
    if test[0] == "CMD":
        return local_command(test[1:], ports, replace)
    assert test[0] == "CMD-SHELL", test
    return local_command(["sh", "-c", test[1]], ports, replace)
