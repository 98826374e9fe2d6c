"""The seed's range-growth rule, with its numbers as per-campaign settings.

At the end of a pass, if the highest id found is within ``threshold`` of the range's end
(``end - max_id_found < threshold``), the next pass's range ends ``step`` further. A pass that
found nobody never grows the range (there is no evidence the population reaches its end).
"""

DEFAULT_THRESHOLD = 50_000
DEFAULT_STEP = 200_000


def should_grow(end, max_id_found, threshold=DEFAULT_THRESHOLD):
    return max_id_found is not None and end - max_id_found < threshold


def next_end(end, max_id_found, threshold=DEFAULT_THRESHOLD, step=DEFAULT_STEP):
    """The range end for the next pass (``end`` itself when the rule does not fire)."""
    if threshold < 0 or step <= 0:
        raise ValueError("growth needs threshold >= 0 and step > 0")
    return end + step if should_grow(end, max_id_found, threshold) else end
