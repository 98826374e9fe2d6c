"""bench/publish.py places its pieces without a join, whatever the random start (make bench
used to exit 1 at random: "a piece joined while placing")."""

import importlib.util
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_publish", ROOT / "bench" / "publish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _simulate(bench, start, order, targets, cols, size):
    """Move each piece in ``order``; True if any move lands within the join tolerance (50) of a neighbour."""
    at = dict(start)
    for n in order:
        for m in bench._neighbours(n, len(start), cols):
            dx, dy = (m % cols - n % cols) * size, (m // cols - n // cols) * size
            if abs(at[m][0] - targets[n][0] - dx) <= 50 and abs(at[m][1] - targets[n][1] - dy) <= 50:
                return True
        at[n] = targets[n]
    return False


def test_a_start_that_made_the_naive_order_join_is_placed_safely(bench):
    cols, size = 10, 100
    start = {n: (3900, 3900 - 5 * n) for n in range(100)}
    start[0] = (1500, 1500)
    targets = {n: bench.cell(n) for n in range(1, 100)}
    start[2] = (targets[1][0] + size, targets[1][1])  # piece 2 waits exactly where piece 1 would join it
    assert _simulate(bench, start, sorted(targets), targets, cols, size)  # what the bench did
    order = bench.safe_order(start, targets, cols, size)
    assert sorted(order) == sorted(targets) and not _simulate(bench, start, order, targets, cols, size)


def test_random_starts_never_join(bench):
    cols, size = 10, 100
    rng = random.Random(7)
    targets = {n: bench.cell(n) for n in range(1, 100)}
    for _ in range(300):
        start = {n: (rng.randint(0, 3900), rng.randint(0, 3900)) for n in range(100)}
        start[0] = (1500, 1500)
        order = bench.safe_order(start, targets, cols, size)
        assert not _simulate(bench, start, order, targets, cols, size)
