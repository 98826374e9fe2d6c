"""Backup and restore of everything the app stores, as one Extended JSON lines file.

What is in a backup, found by listing rather than by a fixed list, so that a
collection another module adds is included without touching this file:

- every collection of the app's three MongoDB databases: the main one (users with
  their token hashes, prefixes, user_prefixes, buckets, counters, puzzles, ...),
  ``MONGO_JOB_DB`` (job documents) and ``MONGO_DATA_DB`` (module data), with each
  collection's index definitions;
- every Redis key of the app (``oc:*``): queue order, leases, live puzzle state.
  Derived keys are left out (REDIS_LEFT_OUT): the gateway snapshot (``oc:gw:*``),
  republished after a restore, the move scripts' SHA1s (``oc:pub:scripts``),
  republished by the scheduler together with the scripts themselves, and the
  recovery marker (``oc:ops:marker``). Ephemeral keys are left out too: worker
  heartbeats (``oc:jobs:workers``, ``oc:jobs:worker:*``; restored, they would show
  long-gone workers as alive) and a puzzle's piece locks, move tokens, move rates
  and bans (seconds long).

Consistency: on a replica set the MongoDB part is read in one snapshot session
(every collection as of one cluster time; MongoDB keeps a snapshot readable for
``minSnapshotHistoryWindowInSeconds``, 300 s by default). Redis is read after
MongoDB, so it is at least as new; the services are built for that order (Redis
decides, the MongoDB record may lag one step). For a backup that is exact to the
last write, stop the services and workers first (docs/operations.md).

File layout (``.gz`` names are gzip-compressed), one JSON value per line:

    {"format": "object_challenge-backup", "version": 1, "databases": ..., "collections": [...]}
    {"c": ["main", "users"], "d": {...document, canonical Extended JSON...}}
    {"r": "oc:jobs:queue:queue", "t": "list", "ttl": -1, "v": [...]}
    {"end": true, "documents": N, "redis_keys": M}

A restore reads the whole file once before writing anything, so a truncated or
foreign file changes nothing; it writes only into empty databases.
"""

import gzip
import logging
import os
import re
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from bson import json_util
from bson.binary import Binary
from flask import current_app
from flask.cli import with_appcontext
from pymongo.errors import ConfigurationError, InvalidOperation, OperationFailure
from redis import Redis
from tqdm import tqdm

from object_challenge import __version__
from object_challenge.accounts import snapshot
from object_challenge.core.extensions import db

log = logging.getLogger(__name__)

FORMAT = "object_challenge-backup"
VERSION = 1
ROLES = ("main", "jobs", "data")  # the app's databases, by what they hold
REDIS_MATCH = "oc:*"
# never backed up: derived state, rebuilt by the services and the scheduler (the
# gateway snapshot from MongoDB; the move scripts' SHA1s, as the scripts must be loaded
# into the new Redis, which republishing does; the recovery marker), and ephemeral
# state (worker heartbeats; piece locks, move tokens, rates and bans)
REDIS_LEFT_OUT = re.compile(
    r"^oc:(gw:|pub:scripts$|ops:marker$|jobs:workers$|jobs:worker:|pub:puzzle:[^:]+:(lock|token|rate|ban):)"
)
BATCH = 1000
# documents keep their exact BSON types (int32 vs int64 vs double, dates); the
# header, footer and Redis lines are written relaxed, so that they read as plain JSON
JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True)
PLAIN_OPTIONS = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True)


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


# -- where the data is -------------------------------------------------------


def app_databases():
    """``{role: Database}`` for the app's three databases (two roles may share one)."""
    main = db.get_db()
    client = main.client
    return {
        "main": main,
        "jobs": client[current_app.config["MONGO_JOB_DB"]],
        "data": client[current_app.config["MONGO_DATA_DB"]],
    }


def _distinct(databases):
    """The databases once each, by name, under their first role."""
    found, seen = {}, set()
    for role, database in databases.items():
        if database.name not in seen:
            seen.add(database.name)
            found[role] = database
    return found


def _collections(database):
    return sorted(n for n in database.list_collection_names() if not n.startswith("system."))


def _index_specs(collection):
    specs = []
    for name, info in sorted(collection.index_information().items()):
        if name == "_id_":
            continue
        options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
        specs.append({"name": name, "key": [list(pair) for pair in info["key"]], "options": options})
    return specs


@contextmanager
def _snapshot_session(client, probe):
    """A snapshot session if the deployment offers one (replica set), else None."""
    session = None
    try:
        session = client.start_session(snapshot=True)
        if probe is not None:
            probe.find_one({}, session=session)
    except (ConfigurationError, OperationFailure, InvalidOperation) as exc:
        log.warning("no snapshot reads (%s); the dump is read collection by collection", exc)
        if session is not None:
            session.end_session()
        session = None
    try:
        yield session
    finally:
        if session is not None:
            session.end_session()


# -- file handling -------------------------------------------------------------


def _open(path, mode, compressed=None):
    path = str(path)
    if compressed if compressed is not None else path.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _line(value, exact=False):
    return json_util.dumps(value, json_options=JSON_OPTIONS if exact else PLAIN_OPTIONS) + "\n"


def _plain(value):
    """A Redis value as str when it is UTF-8, else bytes (written as $binary)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return Binary(value)


def _raw(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


# -- Redis, by type --------------------------------------------------------------

_READERS = {
    "string": lambda p, k: p.get(k),
    "hash": lambda p, k: p.hgetall(k),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "set": lambda p, k: p.smembers(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
    "stream": lambda p, k: p.xrange(k),
}


def _encode_redis(kind, raw):
    if kind == "string":
        return _plain(raw)
    if kind == "hash":
        return [[_plain(f), _plain(v)] for f, v in sorted(raw.items())]
    if kind == "list":
        return [_plain(v) for v in raw]
    if kind == "set":
        return [_plain(v) for v in sorted(raw)]
    if kind == "zset":
        return [[_plain(m), score] for m, score in raw]
    if kind == "stream":
        return [[_plain(i), [[_plain(f), _plain(v)] for f, v in fields.items()]] for i, fields in raw]
    return Binary(raw)  # "dump": Redis's own serialization


def _read_redis_key(client, key):
    """``(type, pttl, value)`` read in one transaction; None if the key vanished."""
    for _attempt in range(3):
        kind = client.type(key).decode()
        if kind == "none":
            return None
        pipe = client.pipeline(transaction=True)
        pipe.type(key)
        pipe.pttl(key)
        (_READERS.get(kind) or (lambda p, k: p.dump(k)))(pipe, key)
        seen, ttl, raw = pipe.execute()
        if seen.decode() == kind:
            return (kind if kind in _READERS else "dump"), ttl, _encode_redis(kind if kind in _READERS else "dump", raw)
    raise BackupError(f"Redis key {key!r} keeps changing type; stop the services and retry")


def _write_redis_key(pipe, key, kind, ttl, value):
    if kind == "string":
        pipe.set(key, _raw(value))
    elif kind == "hash":
        pipe.hset(key, mapping={_raw(f): _raw(v) for f, v in value})
    elif kind == "list":
        pipe.rpush(key, *[_raw(v) for v in value])
    elif kind == "set":
        pipe.sadd(key, *[_raw(v) for v in value])
    elif kind == "zset":
        pipe.zadd(key, {_raw(m): score for m, score in value})
    elif kind == "stream":
        for entry_id, fields in value:
            pipe.xadd(key, {_raw(f): _raw(v) for f, v in fields}, id=_raw(entry_id))
    elif kind == "dump":
        pipe.restore(key, max(ttl, 0), _raw(value))
        return
    else:
        raise BackupError(f"Redis key {key!r} has type {kind!r}, which this version cannot restore")
    if ttl > 0:
        pipe.pexpire(key, ttl)


def _raw_redis():
    """A bytes-level client on the app's Redis (values may not be UTF-8)."""
    return Redis.from_url(current_app.config["REDIS_URL"], decode_responses=False, socket_timeout=30)


def _redis_keys(client):
    return sorted(
        k
        for k in client.scan_iter(match=REDIS_MATCH, count=1000)
        if not REDIS_LEFT_OUT.match(k.decode("utf-8", "replace"))
    )


# -- backup --------------------------------------------------------------------


def backup(path, progress=True, include_redis=True):
    """Write every collection and app Redis key to ``path``; returns a summary dict."""
    path = Path(path)
    if path.exists():
        raise BackupError(f"{path} already exists; choose a new file name (a backup never overwrites)")
    databases = _distinct(app_databases())
    client = databases["main"].client
    plan = [(role, name) for role, database in databases.items() for name in _collections(database)]
    probe = databases[plan[0][0]][plan[0][1]] if plan else None
    partial = path.with_name("." + path.name + ".partial")  # renamed when complete
    documents = redis_keys = 0
    try:
        with (
            _snapshot_session(client, probe) as session,
            _open(partial, "w", compressed=path.name.endswith(".gz")) as out,
        ):
            collections = []
            for role, name in plan:
                collection = databases[role][name]
                collections.append(
                    {
                        "db": role,
                        "name": name,
                        "count": collection.count_documents({}, session=session),
                        "indexes": _index_specs(collection),
                    }
                )
            raw = _raw_redis() if include_redis else None
            keys = _redis_keys(raw) if raw is not None else []
            out.write(
                _line(
                    {
                        "format": FORMAT,
                        "version": VERSION,
                        "app_version": __version__,
                        "created": datetime.now(UTC).isoformat(),
                        "snapshot": session is not None,
                        "databases": {role: database.name for role, database in databases.items()},
                        "collections": collections,
                        "redis": include_redis,
                    }
                )
            )
            total = sum(c["count"] for c in collections) + len(keys)
            with tqdm(
                total=total,
                unit="item",
                desc="backup (documents + Redis keys)",
                file=sys.stderr,
                disable=not progress,
                dynamic_ncols=True,
            ) as bar:
                for role, name in plan:
                    for doc in databases[role][name].find({}, session=session, sort=[("_id", 1)]):
                        out.write(_line({"c": [role, name], "d": doc}, exact=True))
                        documents += 1
                        bar.update()
                for key in keys:
                    entry = _read_redis_key(raw, key)
                    if entry is not None:
                        kind, ttl, value = entry
                        out.write(_line({"r": _plain(key), "t": kind, "ttl": ttl, "v": value}))
                        redis_keys += 1
                    bar.update()
            out.write(_line({"end": True, "documents": documents, "redis_keys": redis_keys}))
            if raw is not None:
                raw.close()
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return {
        "path": str(path),
        "collections": len(plan),
        "documents": documents,
        "redis_keys": redis_keys,
        "snapshot": session is not None,
    }


# -- restore -------------------------------------------------------------------


def read_backup(path):
    """``(header, lines)`` after checking the whole file; ``lines`` re-reads it lazily."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")

    def entries():
        with _open(path, "r") as handle:
            for number, text in enumerate(handle, 1):
                try:
                    yield number, json_util.loads(text, json_options=JSON_OPTIONS)
                except (ValueError, TypeError) as exc:
                    raise BackupError(f"{path}:{number}: not a backup line ({exc})") from None

    header = footer = None
    documents = redis_keys = 0
    try:
        for number, entry in entries():
            if number == 1:
                if not isinstance(entry, dict) or entry.get("format") != FORMAT:
                    raise BackupError(f"{path} is not an object_challenge backup")
                if entry.get("version") != VERSION:
                    raise BackupError(
                        f"{path} is backup format version {entry.get('version')}; this version reads {VERSION}"
                    )
                header = entry
            elif footer is not None:
                raise BackupError(f"{path}:{number}: data after the end marker")
            elif "c" in entry:
                documents += 1
            elif "r" in entry:
                redis_keys += 1
            elif entry.get("end"):
                footer = entry
            else:
                raise BackupError(f"{path}:{number}: unknown line")
    except (OSError, EOFError) as exc:
        raise BackupError(f"{path}: cannot be read ({exc})") from None
    if header is None:
        raise BackupError(f"{path} is empty")
    if footer is None or footer.get("documents") != documents or footer.get("redis_keys") != redis_keys:
        raise BackupError(
            f"{path} is incomplete (no end marker or wrong counts): the backup was cut short; use another backup"
        )
    return header, entries


def refuse_unless_empty(databases, raw=None):
    """Raise BackupError naming what is there unless every app database (and Redis) is empty."""
    found = []
    for database in databases.values():
        for name in _collections(database):
            if database[name].find_one({}, projection={"_id": 1}) is not None:
                found.append(f"{database.name}.{name}")
    if raw is not None:
        keys = _redis_keys(raw)
        if keys:
            found.append(f"{len(keys)} Redis key(s) such as {keys[0].decode('utf-8', 'replace')}")
    if found:
        raise BackupError(
            "refusing to restore into a database that holds data: "
            + ", ".join(found[:8])
            + (" ..." if len(found) > 8 else "")
            + ". Restore into a new, empty deployment (or drop these databases and stop the "
            "services and workers first; see docs/operations.md)"
        )


def restore(path, progress=True, include_redis=True):
    """Load a backup into empty databases, then publish the gateway snapshot."""
    header, entries = read_backup(path)
    databases = app_databases()
    include_redis = include_redis and header.get("redis", False)
    raw = _raw_redis() if include_redis else None
    refuse_unless_empty(_distinct(databases), raw)

    for spec in header["collections"]:
        collection = databases[spec["db"]][spec["name"]]
        if spec["name"] not in collection.database.list_collection_names():
            collection.database.create_collection(spec["name"])
        for index in spec["indexes"]:
            collection.create_index([tuple(pair) for pair in index["key"]], name=index["name"], **index["options"])

    total = sum(c["count"] for c in header["collections"])
    documents = redis_keys = 0
    pending, target = [], None

    def flush():
        if pending:
            target.insert_many(pending, ordered=True)
            pending.clear()

    pipe = raw.pipeline(transaction=False) if raw is not None else None
    with tqdm(
        total=total,
        unit="item",
        desc="restore (documents + Redis keys)",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for number, entry in entries():
            if number == 1 or entry.get("end"):
                continue
            if "c" in entry:
                role, name = entry["c"]
                collection = databases[role][name]
                if target is None or collection.full_name != target.full_name or len(pending) >= BATCH:
                    flush()
                    target = collection
                pending.append(entry["d"])
                documents += 1
                bar.update()
            elif "r" in entry and pipe is not None:
                _write_redis_key(pipe, _raw(entry["r"]), entry["t"], entry["ttl"], entry["v"])
                redis_keys += 1
                if redis_keys % BATCH == 0:
                    pipe.execute()
        flush()
        if pipe is not None:
            pipe.execute()
    if raw is not None:
        raw.close()
    version = snapshot.publish()
    return {
        "documents": documents,
        "redis_keys": redis_keys,
        "collections": len(header["collections"]),
        "snapshot_version": version,
        "created": header.get("created"),
    }


# -- the commands (manage.py backup / restore) ----------------------------------


@click.command("backup")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="File to write (a new one; .gz to compress)."
)
@click.option("--no-redis", is_flag=True, help="Leave out Redis's hot state (queue order, leases, live puzzles).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@with_appcontext
def backup_command(out, no_redis, no_progress):
    """Dump every collection (and the app's Redis keys) to one Extended JSON lines file."""
    try:
        summary = backup(out, progress=not no_progress, include_redis=not no_redis)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"backup written to {summary['path']}: {summary['documents'] + summary['redis_keys']} items = "
        f"{summary['documents']} documents in {summary['collections']} collections + {summary['redis_keys']} Redis keys"
        + ("" if summary["snapshot"] else " (no snapshot reads: not a replica set)")
    )


@click.command("restore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--no-redis", is_flag=True, help="Restore MongoDB only; leave Redis as it is.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@with_appcontext
def restore_command(path, no_redis, no_progress):
    """Load a backup into an EMPTY deployment, then republish the gateway snapshot."""
    try:
        summary = restore(path, progress=not no_progress, include_redis=not no_redis)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"restored {summary['documents']} documents in {summary['collections']} collections "
        f"and {summary['redis_keys']} Redis keys from the backup of {summary['created']}"
    )
    click.echo(f"snapshot published to Redis (version {summary['snapshot_version']})")
