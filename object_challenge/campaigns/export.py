"""A pass's records as Elasticsearch ``_bulk`` NDJSON (the seed's optional push, as a file).

Each record is two lines: the action ``{"index": {"_index": ..., "_id": "<campaign>-<pass>-<player>"}}``
and the document. The ``_id`` makes a reload overwrite instead of duplicating. Load it with::

    curl -s -H 'Content-Type: application/x-ndjson' -X POST \\
         'http://localhost:9200/_bulk?refresh=wait_for' --data-binary @pass-3.ndjson

(Elasticsearch caps a request's body with ``http.max_content_length``, 100mb by default; split
bigger files on an even line count, e.g. ``split -l 200000``.)
"""

import json
import re
from datetime import datetime

from object_challenge.campaigns import records


def index_name(campaign_name):
    """An Elasticsearch-legal index name for a campaign (lowercase, no reserved characters)."""
    return "oc-campaign-" + (re.sub(r"[^a-z0-9_-]+", "-", campaign_name.lower()).strip("-_") or "unnamed")


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def document(record):
    """The document of one stored record: its keys at the top, the API's record beside them."""
    return {
        "campaign": record["campaign"],
        "pass": record["pass"],
        "player_id": record["player_id"],
        "battles": record["battles"],
        "diff_battles": record.get("diff_battles"),
        "ingested_at": record.get("ingested_at"),
        "record": record.get("record"),
    }


def write_bulk(docs, out, index, progress=None, every=1000):
    """Write ``docs`` (an iterable of stored records, e.g. a cursor) to the text stream ``out``.

    ``progress(n)`` is called with the number written so far every ``every`` records and once at
    the end. Returns the number of records written.
    """
    written = 0
    dumps = json.JSONEncoder(separators=(",", ":"), default=_plain).encode
    for record in docs:
        doc_id = f"{record['campaign']}-{record['pass']}-{record['player_id']}"
        out.write(dumps({"index": {"_index": index, "_id": doc_id}}))
        out.write("\n")
        out.write(dumps(document(record)))
        out.write("\n")
        written += 1
        if progress is not None and written % every == 0:
            progress(written)
    if progress is not None:
        progress(written)
    return written


def export_pass(db, campaign, pass_no, out, index, progress=None, every=1000):
    """Stream pass ``pass_no`` of ``campaign`` from MongoDB to ``out``; returns the count written."""
    return write_bulk(records.pass_records(db, campaign, pass_no), out, index, progress, every)
