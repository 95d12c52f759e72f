"""The bench's reading of Prefect's share from a run: the time task runs cover."""

from __future__ import annotations

from bench.cycle import _covered


def test_covered_counts_overlapping_spans_once() -> None:
    # two workers' partitions overlapping, then a gap, then one that lies inside another
    spans = [(0.0, 3.0), (1.0, 4.0), (6.0, 10.0), (7.0, 8.0)]
    assert _covered(spans) == 8.0  # 0-4 and 6-10


def test_covered_takes_spans_in_any_order_and_touching_ones_whole() -> None:
    assert _covered([(5.0, 6.0), (2.0, 5.0), (0.0, 1.0)]) == 5.0
    assert _covered([]) == 0.0
