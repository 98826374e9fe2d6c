"""The schema'd models (MongoEngine)."""
from object_challenge.models.bucket import Bucket
from object_challenge.models.counters import next_id, raise_counter
from object_challenge.models.grants import Prefix, UserPrefix
from object_challenge.models.puzzle import Piece, Puzzle
from object_challenge.models.user import ROLES, User, hash_token, new_token

ALL_MODELS = (User, Prefix, UserPrefix, Bucket, Puzzle)


def ensure_indexes():
    """Create every declared index (idempotent); called at app start and by init."""
    for model in ALL_MODELS:
        model.ensure_indexes()


__all__ = [
    "ALL_MODELS", "Bucket", "Piece", "Prefix", "Puzzle", "ROLES", "User", "UserPrefix",
    "ensure_indexes", "hash_token", "new_token", "next_id", "raise_counter",
]
