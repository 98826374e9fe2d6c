"""Start-up refusals for production that need the database.

``ProductionConfig.check`` (config.py) refuses what the settings alone show
(debug on, development secrets). What only the data shows is checked here, when
a service starts (``wsgi.py``): a user who still holds a token that ships in
``fixtures/`` -- public in this repository -- would let anyone in.
"""

from object_challenge.accounts.models import User, hash_token
from object_challenge.core.config import FIXTURE_TOKENS


class UnsafeStart(RuntimeError):
    """Production must not start like this; the message says what to change."""


def fixture_token_holders():
    """Names of the users whose token is one of ``config.FIXTURE_TOKENS``."""
    hashes = [hash_token(token) for token in sorted(FIXTURE_TOKENS)]
    return sorted(user.name for user in User.objects(token_hash__in=hashes).only("name"))


def refuse_unsafe_start():
    """Raise UnsafeStart if a fixture token is still valid (needs an app context)."""
    holders = fixture_token_holders()
    if holders:
        names = ", ".join(holders)
        raise UnsafeStart(
            f"refusing to start in production: user(s) {names} still hold a token from fixtures/, "
            "which anyone can read. Give each a new token with `python manage.py user rotate-token NAME` "
            "or revoke it with `python manage.py user revoke-token NAME`, then start again"
        )
