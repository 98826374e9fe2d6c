"""The job queue service (Sisyphus's API with leases, attempts, roles).

queue.py   Redis: order, leases, attempts (Lua scripts beside it)
store.py   MongoDB: the job documents and their history
service.py the operations the views call, each one Redis step then its Mongo record
workers.py worker status and attributes; data.py the per-module document store
worker.py  the worker program and ``JobClient``; tasks.py the task registry
"""
