"""Every setting config.py reads from the environment is in the README's configuration table
(docs/contributing.md: "A setting ... document it in the README's configuration table")."""

import re
from pathlib import Path

from object_challenge.core.config import settings_from_env

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_names():
    """The variables the table names; a row may shorten ``RUNS_DEFAULT_WALL_S``, ``_CPU_S``."""
    text = README.read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    names = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        first = row.split("|")[1]
        tokens = re.findall(r"`([A-Z_][A-Z0-9_]*)`", first)
        full = [t for t in tokens if not t.startswith("_")]
        names.update(full)
        for short in (t for t in tokens if t.startswith("_")):
            names.update(f[: m.start()] + short for f in full for m in re.finditer("_", f))
    return names


def test_every_setting_is_in_the_readme_table():
    missing = sorted(set(settings_from_env({})) - documented_names())
    assert not missing, f"settings not in the README's configuration table: {missing}"
