"""The job queue service (Sisyphus's API with leases, attempts, roles).

queue.py   Redis: order, leases, attempts (Lua scripts beside it)
store.py   MongoDB: the job documents and their history
service.py the operations the views call, each one Redis step then its Mongo record
lease_path.py what the gateway needs to answer poll and completion itself (lua/oc/job_lease.lua)
workers.py worker status and attributes; data.py the per-module document store
events.py  job events (output, progress, logs): Redis while active, MongoDB once final
worker.py  the worker program and ``JobClient``; tasks.py the task registry
cli.py     manage.py worker | jobs ...     scripts/*.lua the Redis scripts
"""

from object_challenge.jobs import cli, events, lease_path, metrics, service, tasks, views

bp = views.bp
MODELS = ()  # job documents are schemaless (flask-pymongo), see store.py


def register(app):
    app.extensions["oc.schedule"].append((service.tick, 0.5))  # expired leases, stopped workers
    if "jobs" in app.config["SERVICE_NAMES"]:
        app.extensions["oc.metrics"].append(metrics.QueueCollector())
    app.extensions["oc.schedule"].append((events.archive_due, 1.0))  # events of final jobs -> MongoDB
    app.extensions["oc.schedule"].append((lease_path.publish_if_changed, 1.0))  # the gateway's poll/complete
    for command in cli.COMMANDS:
        app.cli.add_command(command)


__all__ = ["bp", "register", "tasks"]
