"""The runs service: a run is a job on queue ``RUNS_QUEUE`` with one task ``run_program``.

The run id is the job id. The job queue keeps the run's state, attempts and lease;
its job events are the run's output (stdout/stderr/system); the task's result holds
the verdict and the stages. Runs adds the request rules (execute.prepare), the
per-user cap of active runs (one Redis script) and the seed's read cursor.
"""

import base64
import dataclasses
import time
from pathlib import Path

from flask import current_app

from object_challenge.core.errors import ApiError, BadRequest, Conflict, NotFound, TooManyRequests
from object_challenge.core.extensions import redis
from object_challenge.jobs import events as job_events
from object_challenge.jobs import keys as job_keys
from object_challenge.jobs import service as job_service
from object_challenge.runs import keys, languages
from object_challenge.runs.execute import LIMIT_NAMES, LimitAboveMax, prepare
from object_challenge.runs.files import InvalidRun
from object_challenge.runs.zipper import build_zip

MODULE = "run_program"
ADMIT = (Path(__file__).resolve().parent / "scripts" / "admit.lua").read_text()
FINAL = {"completed": "finished", "failed": "finished", "cancelled": "cancelled"}
EXTENSIONS = {".adb": "ada", ".ads": "ada", ".c": "c", ".h": "c", ".py": "python"}


# -- errors (rendered by core/errors.py) ---------------------------------------------
class InvalidRunError(BadRequest):
    code = "invalid_run"


class UnknownLanguageError(ApiError):
    status, code = 422, "unknown_language"


class LimitAboveMaxError(ApiError):
    status, code = 422, "limit_above_max"


class ModeUnavailableError(ApiError):
    status, code = 501, "mode_unavailable"


class RunNotFound(NotFound):
    code = "run_not_found"

    def __init__(self, run_id):
        super().__init__(f"no run {run_id!r} (or not yours)")


class TooManyRuns(TooManyRequests):
    code = "too_many_runs"


def named_errors(func, *args, **kwargs):
    """Call ``func``; the runs package's own exceptions become the API's errors."""
    try:
        return func(*args, **kwargs)
    except InvalidRun as exc:
        raise InvalidRunError(exc.message, field=exc.field) from None
    except languages.UnknownLanguage as exc:
        raise UnknownLanguageError(str(exc), known=sorted(languages.LANGUAGES)) from None
    except LimitAboveMax as exc:
        raise LimitAboveMaxError(exc.message, field=exc.field, max=exc.max) from None
    except languages.ModeUnavailable as exc:
        raise ModeUnavailableError(str(exc)) from None


def limit_settings(cfg):
    """(defaults, maxima) of the five limits from the settings."""
    defaults = {name: cfg[f"RUNS_DEFAULT_{name.upper()}"] for name in LIMIT_NAMES}
    maxima = {name: cfg[f"RUNS_MAX_{name.upper()}"] for name in LIMIT_NAMES}
    return defaults, maxima


def task_data(req):
    """The job's task data: the prepared request, files as base64 (JSON-safe bytes)."""
    limits = dataclasses.asdict(req["limits"])
    return {
        "language": req["language"],
        "mode": req["mode"],
        "files": [
            {"name": name, "content": base64.b64encode(data).decode(), "encoding": "base64"}
            for name, data in req["files"]
        ],
        "main": req["main"],
        "stdin": req["stdin"],
        "args": req["args"],
        "limits": {name: limits[name] for name in LIMIT_NAMES},
    }


def seed_body(body):
    """The seed's ``/run_program/`` body -> a ``POST /runs`` body."""
    if not isinstance(body, dict):
        raise InvalidRunError('send {"files": [{"basename", "contents"}], "mode"}', field="body")
    files = body.get("files")
    if not isinstance(files, list):
        raise InvalidRunError("files must be a list of {basename, contents}", field="files")
    converted = []
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise InvalidRunError(f"files[{i}] must be an object {{basename, contents}}", field=f"files[{i}]")
        converted.append({"name": entry.get("basename"), "content": entry.get("contents", "")})
    language = body.get("language")
    if language is None:
        names = [f["name"] for f in converted if isinstance(f["name"], str)]
        language = next((EXTENSIONS[n[n.rfind(".") :]] for n in names if n[n.rfind(".") :] in EXTENSIONS), None)
        if language is None:
            raise UnknownLanguageError(
                "cannot tell the language from the file names (.adb/.ads, .c/.h, .py); send 'language'",
                known=sorted(languages.LANGUAGES),
            )
    out = {"language": language, "mode": body.get("mode") or "run", "files": converted}
    for name in ("main", "stdin", "args", "limits"):
        if name in body:
            out[name] = body[name]
    return out


class Runs:
    def __init__(self, jobs, client, config):
        self.jobs = jobs
        self.redis = client
        self.config = config
        self.admit_script = client.register_script(ADMIT)

    # -- creating ----------------------------------------------------------------------
    def create(self, body, owner):
        defaults, maxima = limit_settings(self.config)
        req = named_errors(prepare, body, defaults=defaults, maxima=maxima)
        job = self.jobs.enqueue(
            {
                "job_title": f"run {req['language']} {req['mode']}",
                "tasks": [{"module": MODULE, "data": task_data(req)}],
            },
            self.config["RUNS_QUEUE"],
            owner,
        )
        run_id = job["job_id"]
        cap = self.config["RUNS_MAX_ACTIVE_PER_USER"]
        admitted, active = self.admit_script(
            keys=[keys.active(owner.user_id)],
            args=[job_keys.job(""), cap, run_id, int(time.time() * 1000)],
        )
        if not admitted:
            self.jobs.delete(run_id)  # never handed out (or its result is ignored)
            raise TooManyRuns(
                f"you have {active} runs not finished yet (at most RUNS_MAX_ACTIVE_PER_USER={cap}); "
                "wait for one to finish or cancel one",
                retry_after=1,
                active=active,
                max=cap,
            )
        return {"run_id": run_id, "job_id": run_id, "state": "queued"}

    # -- reading -----------------------------------------------------------------------
    def job(self, run_id, identity):
        """The run's job document, if ``identity`` may see it (its owner or an admin)."""
        try:
            job = self.jobs.get(run_id)
        except job_service.JobNotFound:
            raise RunNotFound(run_id) from None
        tasks = job.get("tasks") or []
        if len(tasks) != 1 or tasks[0].get("module") != MODULE:
            raise RunNotFound(run_id)
        if not identity.is_admin and job.get("owner_id") != identity.user_id:
            raise RunNotFound(run_id)
        return job

    def describe(self, job):
        """GET /runs/{id}: state, verdict, stages, attempt."""
        state = job["state"]
        outcome = task_outcome(job)
        if state in FINAL:
            run_state = FINAL[state]
            verdict = outcome.get("verdict") if outcome else None
            if state == "cancelled" or (outcome and outcome.get("cancelled")):
                run_state, verdict = "cancelled", None
            elif verdict is None:  # the task raised, or every lease expired
                verdict = "internal_error"
        else:
            run_state, verdict = state, None  # queued | running
        body = {
            "run_id": job["job_id"],
            "job_id": job["job_id"],
            "state": run_state,
            "verdict": verdict,
            "stages": (outcome or {}).get("stages", []),
            "attempt": job.get("attempt", 0),
            "language": job["tasks"][0]["data"].get("language"),
            "mode": job["tasks"][0]["data"].get("mode"),
            "added": job.get("added"),
            "finished_at": job.get("finished_at"),
        }
        result = job.get("result") or {}
        if run_state == "finished" and verdict == "internal_error" and result.get("message"):
            body["message"] = result["message"]
        return body

    def cancel(self, job):
        if job["state"] in FINAL:
            return self.describe(job)
        try:
            self.jobs.cancel(job["job_id"])
        except Conflict:  # it finished meanwhile: the answer says how
            pass
        return self.describe(self.jobs.get(job["job_id"]))

    # -- the seed's cursor ---------------------------------------------------------------
    def check_output(self, job, read_events):
        """``POST /check_output/``: lines since this identifier's last check."""
        cursor_key, tail_key = keys.cursor(job["job_id"]), keys.cursor_tail(job["job_id"])
        after, tail = self.redis.mget(cursor_key, tail_key)
        page = read_events(job, after or "")
        # events are chunks of output, not lines: join them to what was left after the last
        # newline, answer the complete lines, keep the rest for the next check
        text = (tail or "") + "".join(e["data"] for e in page["events"] if isinstance(e.get("data"), str))
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        tail = lines.pop()
        described = self.describe(job)
        completed = described["state"] in ("finished", "cancelled") and page["done"]
        if completed and tail:
            lines.append(tail)
            tail = ""
        pipe = self.redis.pipeline(transaction=True)
        if page["next"] and page["next"] != after:
            pipe.set(cursor_key, page["next"], ex=7 * 86400)
        pipe.set(tail_key, tail, ex=7 * 86400)
        pipe.execute()
        stages = described["stages"]
        status = stages[-1]["exit_code"] if completed and stages else None
        return {
            "output": lines,
            "completed": completed,
            "status": status,
            "verdict": described["verdict"],
        }


def task_outcome(job):
    """The run_program task's return value (verdict, stages) once the job has one."""
    result = job.get("result") or {}
    results = result.get("result")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        return results[0]
    return None


def download(body):
    if not isinstance(body, dict):
        raise InvalidRunError('send {"files": [...], "base"?, "name"?}', field="body")
    return named_errors(build_zip, body.get("files"), body.get("base"), body.get("name"))


def seed_download(body):
    if isinstance(body, dict) and isinstance(body.get("files"), list):
        files = [
            {"name": f.get("basename"), "content": f.get("contents", "")} if isinstance(f, dict) else f
            for f in body["files"]
        ]
        body = {**body, "files": files}
    return download(body)


def runs():
    app = current_app._get_current_object()
    service = app.extensions.get("oc_runs")
    if service is None:
        service = Runs(job_service.jobs(), redis.client, app.config)
        app.extensions["oc_runs"] = service
    return service


def read_events(job, after="", limit=1000):
    """The job events after ``after``: ``{"events", "next", "done", "state"}`` (jobs/events.py)."""
    return job_events.events().read(job_events.annotate(job), after, limit)


def read_output(job, after="", limit=100):
    """GET /runs/{id}/output: ``{"events": [{"id", "stream", "data"}], "next", "done", "state"}``."""
    page = read_events(job, after, limit)
    events = [
        {"id": e["id"], "stream": e.get("stream") or e.get("type"), "data": e.get("data")} for e in page["events"]
    ]
    return {"events": events, "next": page["next"], "done": page["done"], "state": page["state"]}
