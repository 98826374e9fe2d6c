"""The growth rule fires exactly when end - max_id_found < threshold."""

import pytest

from object_challenge.campaigns.growth import next_end, should_grow

CASES = [
    # end, max_id_found, threshold, step, next end
    (1_200_000, 1_150_001, 50_000, 200_000, 1_400_000),  # 49,999 from the end: grows
    (1_200_000, 1_150_000, 50_000, 200_000, 1_200_000),  # exactly the threshold: does not
    (1_200_000, 1_200_000, 50_000, 200_000, 1_400_000),  # found the last id
    (1_200_000, 900_000, 50_000, 200_000, 1_200_000),
    (20_000, 19_990, 100, 5_000, 25_000),
    (20_000, 19_900, 100, 5_000, 20_000),
    (20_000, None, 100, 5_000, 20_000),  # nobody found: no evidence, no growth
    (20_000, 19_999, 0, 5_000, 20_000),  # threshold 0 never fires
]


@pytest.mark.parametrize("end,found,threshold,step,expected", CASES)
def test_the_rule_fires_exactly_when_the_highest_id_is_within_the_threshold(end, found, threshold, step, expected):
    assert next_end(end, found, threshold, step) == expected
    assert should_grow(end, found, threshold) == (expected != end)


def test_a_step_that_could_not_grow_is_a_programming_error():
    with pytest.raises(ValueError):
        next_end(100, 99, 10, 0)
