"""Each player's latest record in a campaign, kept beside the records for the next pass's diffs.

One document per campaign and block of 100 player ids (``_id`` ``"<campaign>:<(player_id - origin) // 100>"``,
``origin`` the campaign's first id, so that a campaign's batches of 100 are one block each; 0, i.e.
``player_id // 100``, for campaigns created before 2026-12-06 afternoon, whose blocks stay where they are)::

    {"_id", "campaign", "v": writes so far, "players": '{"<player_id>": [pass, battles], ...}'}

``players`` is that map as one JSON string (written whole on each write), so a block is one
value for the store to encode, not 100 keys of two numbers each: on mongoeco (the local stand-in)
a write of 99 entries as ``$set`` of 99 ``players.<id>`` paths cost 20 ms of its CPU, the same
block as one string 1.5 ms, a read 2.5 ms vs 0.75 ms (measured, docs/benchmarks.md). Blocks
written before 2026-12-06 (afternoon) hold ``players`` as an object; they are read as such and
rewritten as a string on their next write.

A batch of at most 100 consecutive ids touches one block (two when it straddles a boundary: a
batch size that does not divide 100, or an older campaign), so computing its ``diff_battles``
costs one read by ``_id`` and, after its records are inserted, one write by ``_id``: no query
over the records, nothing that grows with what is stored (on mongoeco, the local MongoDB
stand-in, an ``$in`` over the records' index reads the whole collection; by ``_id`` it stays
flat, as on MongoDB).

Safe with any number of deliveries: an entry only moves forward (a pass never replaces a later
one), the records are inserted before the block moves (so a block never runs ahead of the
records), and each write is conditional on the version ``v`` that was read, re-read and redone
when another write came in between.
"""

import json

from pymongo.errors import DuplicateKeyError

COLLECTION = "campaign_latest"
BLOCK = 100
ATTEMPTS = 20


def collection(db):
    return db[COLLECTION]


def block_id(campaign, player_id, origin=0):
    """The block of ``player_id``: blocks of 100 ids counted from ``origin`` (a campaign's first
    id since 2026-12-06 afternoon, so that a batch of 100 is one block; 0 for older campaigns)."""
    return f"{campaign}:{(int(player_id) - origin) // BLOCK}"


def read(db, campaign, player_ids, origin=0):
    """``{block_id: document or None}`` for the blocks holding ``player_ids`` (one read by ``_id`` each)."""
    ids = sorted({block_id(campaign, i, origin) for i in player_ids})
    return {i: collection(db).find_one({"_id": i}) for i in ids}


def _players(doc):
    """A block's ``{"<player_id>": [pass, battles]}`` (a JSON string, or an object in older blocks)."""
    players = (doc or {}).get("players") or {}
    return json.loads(players) if isinstance(players, str) else players


def entries(blocks):
    """``{player_id: (pass, battles)}`` from documents ``read`` returned."""
    found = {}
    for doc in blocks.values():
        for key, (pass_no, battles) in _players(doc).items():
            found[int(key)] = (pass_no, battles)
    return found


def advance(db, campaign, pass_no, battles, blocks=None, origin=0):
    """Record ``battles`` (``{player_id: battles}``) as pass ``pass_no``, for players whose entry
    is older; ``blocks`` is what ``read`` returned (read again if a write came in between)."""
    by_block = {}
    for player_id, count in battles.items():
        by_block.setdefault(block_id(campaign, player_id, origin), {})[player_id] = count
    blocks = dict(blocks or {})
    for bid, counts in by_block.items():
        doc = blocks[bid] if bid in blocks else collection(db).find_one({"_id": bid})
        for _ in range(ATTEMPTS):
            if _write_block(db, campaign, bid, doc, pass_no, counts):
                break
            doc = collection(db).find_one({"_id": bid})
        else:
            raise RuntimeError(f"block {bid}: {ATTEMPTS} writes in a row lost to concurrent ones")


def _write_block(db, campaign, bid, doc, pass_no, counts):
    """True when the block holds pass ``pass_no`` (or later) for every player of ``counts``."""
    stored = _players(doc)
    changes = {str(i): [pass_no, b] for i, b in counts.items() if stored.get(str(i), [0])[0] < pass_no}
    if not changes:
        return True
    players = json.dumps({**stored, **changes}, separators=(",", ":"))
    if doc is None:
        try:
            collection(db).insert_one({"_id": bid, "campaign": campaign, "v": 1, "players": players})
            return True
        except DuplicateKeyError:  # another delivery created it meanwhile
            return False
    # the whole map, conditional on the version read: a write in between makes this one re-read
    update = {"$set": {"players": players}, "$inc": {"v": 1}}
    return collection(db).update_one({"_id": bid, "v": doc.get("v", 0)}, update).matched_count == 1
