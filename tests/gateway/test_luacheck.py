"""luacheck (Debian lua-check, config: .luacheckrc) passes on the gateway's Lua and the harness."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_luacheck_finds_nothing():
    check = subprocess.run(
        ["luacheck", "--no-color", "lua/", "tests/lua"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout[-4000:]
