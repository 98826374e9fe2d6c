"""Campaigns (issue 15): range-batched sweeps of an external player API, ingested once per pass.

So far the parts that need neither the app nor the job queue (see docs/campaigns.md):
``playerapi`` (the stand-in for the external API), ``source`` (the ``players`` source client),
``ingest``/``records`` (bulk upsert and reads), ``growth`` (the range rule), ``export`` (_bulk NDJSON).
"""
