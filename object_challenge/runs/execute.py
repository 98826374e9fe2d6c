"""Build and run a user's program in the sandbox; name the verdict.

``prepare(body, ...)`` checks a request (raising the named errors the view maps to
400/422/501) and returns it normalised; the worker then calls ``execute(...)`` with the
same fields. Neither needs Flask.
"""

import logging
import signal

from . import languages
from .files import InvalidRun, validate_args, validate_files, write_files
from .sandbox import Box, Limits

log = logging.getLogger(__name__)

VERDICTS = ("ok", "build_error", "runtime_error", "time_limit", "memory_limit", "output_limit", "internal_error")
LIMIT_NAMES = ("wall_s", "cpu_s", "memory_mb", "processes", "output_kb")
DEFAULT_LIMITS = {"wall_s": 10, "cpu_s": 5, "memory_mb": 256, "processes": 64, "output_kb": 64}
MAX_LIMITS = {"wall_s": 60, "cpu_s": 30, "memory_mb": 1024, "processes": 256, "output_kb": 1024}
# builds get their own fixed limits: compilers need more memory than most programs
BUILD_LIMITS = Limits(wall_s=60, cpu_s=30, memory_mb=1024, processes=64, output_kb=64, file_mb=64, tmp_mb=128)
MAX_STDIN_BYTES = 512 * 1024
_MEMORY_SIGNS = (b"MemoryError", b"Cannot allocate memory", b"STORAGE_ERROR", b"std::bad_alloc", b"out of memory")


class LimitAboveMax(ValueError):
    """422 limit_above_max, with the field and its configured maximum."""

    def __init__(self, field, maximum):
        super().__init__(f"{field} is above the maximum {maximum}")
        self.message = str(self)
        self.field = field
        self.max = maximum


def resolve_limits(requested=None, defaults=None, maxima=None):
    """The run's Limits: defaults overridden by the request, each checked against its max."""
    defaults = {**DEFAULT_LIMITS, **(defaults or {})}
    maxima = {**MAX_LIMITS, **(maxima or {})}
    if requested is None:
        requested = {}
    if not isinstance(requested, dict):
        raise InvalidRun("limits must be an object", "limits")
    values = dict(defaults)
    for key, value in requested.items():
        if key not in LIMIT_NAMES:
            raise InvalidRun(f"unknown limit {key!r}; known: {', '.join(LIMIT_NAMES)}", f"limits.{key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InvalidRun(f"limits.{key} must be a positive number", f"limits.{key}")
        if value > maxima[key]:
            raise LimitAboveMax(f"limits.{key}", maxima[key])
        values[key] = value
    return Limits(**{k: (int(v) if k != "wall_s" and k != "cpu_s" else float(v)) for k, v in values.items()})


def prepare(body, *, defaults=None, maxima=None):
    """Check a POST /runs body; return the normalised request (raises InvalidRun & co)."""
    if not isinstance(body, dict):
        raise InvalidRun("send a JSON object", "body")
    lang = languages.get(body.get("language"))
    mode = body.get("mode", "run")
    languages.check_mode(lang, mode)
    files = validate_files(body.get("files"))
    stdin = body.get("stdin") or ""
    if not isinstance(stdin, str) or len(stdin.encode()) > MAX_STDIN_BYTES:
        raise InvalidRun(f"stdin must be a string of at most {MAX_STDIN_BYTES // 1024} KiB", "stdin")
    main = lang.main_file([n for n, _ in files], body.get("main"))
    return {
        "language": lang.name,
        "mode": mode,
        "files": files,
        "main": main,
        "stdin": stdin,
        "args": validate_args(body.get("args")),
        "limits": resolve_limits(body.get("limits"), defaults, maxima),
    }


def execute(
    language,
    mode,
    files,
    main=None,
    stdin="",
    args=None,
    limits=None,
    on_event=None,
    should_cancel=None,
    build_limits=None,
    box_options=None,
):
    """Build (if the language needs it) and run; return the result dict.

    ``files``: the request's list of {name, content, encoding} or already-validated
    (name, bytes) pairs. ``limits``: a Limits or a request dict. ``on_event(stream,
    data)`` gets output as it comes (stream: stdout, stderr, system), at least every
    100 ms while there is some. ``should_cancel()`` is polled every 200 ms.
    ``box_options``: passed to sandbox.Box (``cgroups=False`` drops that layer; it no
    longer saves measurable time, docs/benchmarks.md).
    Result: {"verdict", "cancelled", "stages": [{stage, exit_code, signal, cpu_ms,
    wall_ms, memory_kb, truncated}]}; verdict is None when cancelled.
    """
    emit = on_event or (lambda stream, data: None)
    result = {"verdict": None, "cancelled": False, "stages": []}
    try:
        lang = languages.get(language)
        languages.check_mode(lang, mode)
        if files and isinstance(files[0], dict):
            files = validate_files(files)
        args = validate_args(args)
        if not isinstance(limits, Limits):
            limits = resolve_limits(limits)
        names = [n for n, _ in files]
        main = lang.main_file(names, main)
        with Box(**(box_options or {})) as box:
            write_files(box.work_dir, files)
            box.hand_over()
            build = lang.build_argv(names, main, mode)
            if build:
                outcome = box.run(build, build_limits or BUILD_LIMITS, on_output=emit, should_cancel=should_cancel)
                result["stages"].append(_stage("build", outcome))
                verdict = _build_verdict(outcome)
                if verdict != "ok" or mode == "build":
                    return _finish(result, verdict, outcome, emit, "build")
            if mode != "run":
                return _finish(result, "ok", None, emit, "build")
            outcome = box.run(
                lang.run_argv(names, main, args), limits, stdin=stdin, on_output=emit, should_cancel=should_cancel
            )
            result["stages"].append(_stage("run", outcome))
            return _finish(result, _run_verdict(outcome, limits), outcome, emit, "run")
    except (InvalidRun, languages.UnknownLanguage, languages.ModeUnavailable, LimitAboveMax):
        raise
    except Exception as exc:  # the worker must record a verdict, never die with the run
        log.exception("run failed inside the runner")
        emit("system", f"internal error: {type(exc).__name__}\n")
        result["verdict"] = "internal_error"
        return result


def _stage(name, o):
    return {
        "stage": name,
        "exit_code": o.exit_code,
        "signal": o.signal,
        "cpu_ms": o.cpu_ms,
        "wall_ms": o.wall_ms,
        "memory_kb": o.memory_kb,
        "truncated": o.truncated,
    }


def _build_verdict(o):
    if not o.started:
        return "internal_error"
    if o.killed_for == "cancel":
        return "cancelled"
    if o.killed_for == "output":
        return "output_limit"
    if o.killed_for == "wall" or o.signal in (signal.SIGXCPU,):
        return "time_limit"
    return "ok" if o.exit_code == 0 and o.signal is None else "build_error"


def _run_verdict(o, limits):
    if not o.started:
        return "internal_error"
    if o.killed_for == "cancel":
        return "cancelled"
    if o.killed_for == "output":
        return "output_limit"
    if (
        o.killed_for == "wall"
        or o.signal == signal.SIGXCPU
        or (o.signal == signal.SIGKILL and o.cpu_ms >= limits.cpu_s * 1000)
    ):
        return "time_limit"
    if o.memory_exceeded:
        return "memory_limit"
    if o.exit_code == 0 and o.signal is None:
        return "ok"
    if any(sign in o.tail.get("stderr", b"") for sign in _MEMORY_SIGNS):
        return "memory_limit"
    return "runtime_error"


_EXPLAIN = {
    "time_limit": "time limit: the program was stopped",
    "output_limit": "output limit: the program was stopped",
    "memory_limit": "memory limit reached",
    "build_error": "build failed",
    "internal_error": "the sandbox could not run the program",
}


def _finish(result, verdict, outcome, emit, stage):
    if verdict == "cancelled":
        result["cancelled"] = True
        emit("system", "cancelled\n")
        return result
    result["verdict"] = verdict
    if verdict in _EXPLAIN:
        detail = f" ({outcome.error})" if outcome is not None and outcome.error else ""
        emit("system", f"{stage}: {_EXPLAIN[verdict]}{detail}\n")
    elif outcome is not None and (
        outcome.signal == signal.SIGXFSZ or b"File too large" in outcome.tail.get("stderr", b"")
    ):
        emit("system", f"{stage}: file size limit reached\n")
    return result
