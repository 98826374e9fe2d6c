"""The linters run with the tests: ruff (lint and format) and the import-linter layer contract."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "--output-format", "concise", "."],
        ["ruff", "format", "--check", "."],
        ["lint-imports"],
    ],
    ids=["ruff-check", "ruff-format", "import-layers"],
)
def test_linter_is_clean(argv):
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
