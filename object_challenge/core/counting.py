"""Counting documents in a way every store we run on answers.

``Collection.count_documents`` is an aggregation (``$match`` + ``$group``). The MongoDB
stand-in (mongoeco, `make run` and the tests) materialises every matching document
for it and refuses past its budget: with 58,534 job records, ``count_documents`` failed
with "Aggregation pipeline exceeds the configured materialization budget", so every
page, metric and command that counted finished jobs answered an error. The ``count``
command gives the same number on MongoDB (outside multi-document transactions, which
this code does not use for counting) and, on the stand-in, without materialising:
the same 58,534 counted in 212 ms with a filter, 9 ms without (docs/benchmarks.md).
"""


def count(collection, query=None):
    """How many documents of ``collection`` match ``query`` (all without one)."""
    return int(collection.database.command("count", collection.name, query=query or {})["n"])
