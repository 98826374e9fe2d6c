"""The bucket admission rule of seed 004, as one pure function.

For user ``u`` and bucket name ``b``, let M be the prefixes ``b`` starts with:

- forbidden: some p in M has (u, p, allowed=False)
- mine:      some p in M has (u, p, allowed=True)
- others':   some p in M has (u', p, allowed=True) for some u' != u

allowed = not forbidden and (not others' or mine)

The gateway runs the same rule in ``lua/oc/bucket.lua``; both are tested from
``tests/cases/bucket_rules.json``.
"""


def admit(user_id, name, grants):
    """True when ``user_id`` may create bucket ``name`` under ``grants``.

    ``grants`` is an iterable of ``(user_id, prefix, is_allowed)``.
    """
    forbidden = mine = others = False
    for grant_user, prefix, is_allowed in grants:
        if not name.startswith(prefix):
            continue
        if grant_user == user_id:
            if is_allowed:
                mine = True
            else:
                forbidden = True
        elif is_allowed:
            others = True
    return not forbidden and (not others or mine)
