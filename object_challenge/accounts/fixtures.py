"""Loading fixture files (users.json, prefixes.json, user_prefixes.json) idempotently.

A record that already exists (same user_id / prefix_id / pair) is left as it is,
so running ``init`` twice changes nothing and duplicates nothing, and an
operator's later changes (a rotated token, a changed grant) survive a re-run.
"""

import json
from pathlib import Path

from mongoengine import NotUniqueError

from object_challenge.accounts.models import Prefix, User, UserPrefix, name_problem, prefix_problem
from object_challenge.core.config import ROOT
from object_challenge.core.counters import raise_counter

DEFAULT_DIR = ROOT / "fixtures"
FILES = ("users.json", "prefixes.json", "user_prefixes.json")


class FixtureError(Exception):
    pass


def _read(directory, filename):
    path = Path(directory) / filename
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except ValueError as exc:
        raise FixtureError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise FixtureError(f"{path}: must hold a JSON list of records")
    return rows


def _insert(document):
    try:
        document.save(force_insert=True)
        return True
    except NotUniqueError:
        return False


def load(directory=DEFAULT_DIR, progress=None):
    """Load every fixture file in ``directory``; returns ``{file: (created, kept)}``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FixtureError(f"{directory}: no such fixtures directory")
    progress = progress or (lambda message: None)
    summary = {}

    created = kept = 0
    users = _read(directory, "users.json")
    for row in users:
        try:
            user = User(user_id=int(row["user_id"]), name=row["name"], role=row.get("role", "user"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FixtureError(f"users.json: bad record {row!r} ({exc})") from None
        problem = name_problem(user.name)
        if problem:
            raise FixtureError(f"users.json: user_id {user.user_id}: {problem}")
        user.set_token(row.get("token"))
        if User.objects(user_id=user.user_id).first() or User.objects(name=user.name).first():
            kept += 1
        elif _insert(user):
            created += 1
        else:
            kept += 1
    if users:
        raise_counter("user_id", max(int(r["user_id"]) for r in users))
    summary["users.json"] = (created, kept)
    progress(f"users: {created} created, {kept} already there")

    created = kept = 0
    prefixes = _read(directory, "prefixes.json")
    for row in prefixes:
        prefix = Prefix(prefix_id=int(row["prefix_id"]), prefix=row["prefix"])
        problem = prefix_problem(prefix.prefix)
        if problem:
            raise FixtureError(f"prefixes.json: prefix_id {prefix.prefix_id}: {prefix.prefix!r}: {problem}")
        if Prefix.objects(prefix_id=prefix.prefix_id).first() or not _insert(prefix):
            kept += 1
        else:
            created += 1
    if prefixes:
        raise_counter("prefix_id", max(int(r["prefix_id"]) for r in prefixes))
    summary["prefixes.json"] = (created, kept)
    progress(f"prefixes: {created} created, {kept} already there")

    created = kept = 0
    for row in _read(directory, "user_prefixes.json"):
        grant = UserPrefix(
            user_id=int(row["user_id"]), prefix_id=int(row["prefix_id"]), is_allowed=bool(row["is_allowed"])
        )
        if _insert(grant):
            created += 1
        else:
            kept += 1
    summary["user_prefixes.json"] = (created, kept)
    progress(f"user_prefixes: {created} created, {kept} already there")
    return summary
