"""Campaigns (issue 15): range-batched sweeps of an external player API, ingested once per pass.

playerapi.py the stand-in for the external API (its own process or thread)
source.py    the ``players`` source client (rate shared through Redis, back-off)
tasks.py     the ``players`` task module (queue ``campaigns``), registered on import
service.py   create, passes, feeding the queue, ingest once per batch, growth, retry
store.py     campaign and batch documents; records.py / ingest.py the per-pass player records
views.py     /newapi/campaigns (served by the jobs service);  cli.py manage.py campaign ...
growth.py    the range rule;  export.py a pass as Elasticsearch _bulk NDJSON
"""

from object_challenge.campaigns import cli, metrics, service, store, tasks, views
from object_challenge.core.extensions import mongo

bp = views.bp


class CampaignIndexes:
    """Schemaless documents (store.py); this stands in the model list so ``init`` makes their indexes."""

    @staticmethod
    def ensure_indexes():
        store.ensure_indexes(mongo.db)


MODELS = (CampaignIndexes,)


def register(app):
    app.extensions["oc.models"].extend(MODELS)
    app.extensions["oc.schedule"].append((service.scheduled_tick, 0.5))  # feeding, end of pass, retries
    if "jobs" in app.config["SERVICE_NAMES"]:  # the service that serves /newapi/campaigns
        app.extensions["oc.metrics"].append(metrics.CampaignCollector())
    for command in cli.COMMANDS:
        app.cli.add_command(command)


__all__ = ["bp", "register", "tasks"]
