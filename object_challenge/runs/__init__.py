"""Runs (issue 14): build and run users' programs in a sandbox, as jobs on the queue.

sandbox.py seccomp.py  the sandbox (bubblewrap, rlimits, seccomp, uid, cgroups)
languages.py files.py  languages, file rules;  execute.py  prepare() and execute()
zipper.py  the download;  service.py views.py  the routes;  keys.py  Redis keys
tasks.py   the ``run_program`` task (importing this package registers it)
"""

from object_challenge.runs import service, tasks, views

bp = views.bp
MODELS = ()  # a run is a job (jobs/store.py); runs keeps only Redis keys (keys.py)


def register(app):
    """Nothing periodic: the job queue's scheduler ends runs whose worker died."""


__all__ = ["bp", "register", "service", "tasks"]
