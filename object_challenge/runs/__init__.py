"""Runs (issue 14): build and run users' programs in a sandbox, as jobs on the queue.

sandbox.py seccomp.py  the sandbox (bubblewrap, rlimits, seccomp, uid, cgroups)
languages.py files.py  languages, file rules;  execute.py  prepare() and execute()
zipper.py  the download;  service.py views.py  the routes;  keys.py  Redis keys
tasks.py   the ``run_program`` task (importing this package registers it)
metrics.py verdicts and durations, counted when a worker posts a run's result
"""

from object_challenge.runs import metrics, service, tasks, views

bp = views.bp
MODELS = ()  # a run is a job (jobs/store.py); runs keeps only Redis keys (keys.py)


def register(app):
    """Nothing periodic: the job queue's scheduler ends runs whose worker died. Runs count
    their verdicts where the jobs service records a completion."""
    app.extensions.setdefault("oc.jobs.completed", []).append((service.MODULE, metrics.count_completed))
    if "jobs" in app.config["SERVICE_NAMES"]:  # the service that receives the results
        app.extensions["oc.metrics"].append(metrics.RunCollector())


__all__ = ["bp", "register", "service", "tasks"]
