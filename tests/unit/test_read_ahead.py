"""ReadAhead: a source's pages read on a thread, a bounded number ahead of the loop."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from flows.ahead import ReadAhead

RUN = contextvars.ContextVar("RUN", default="none")


class Source:
    """Pages 0..n-1, recording how far it was read, on which thread, and its close."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.read = 0
        self.threads: set[str] = set()
        self.closed_on: str | None = None

    def pages(self) -> Iterator[int]:
        try:
            for k in range(self.n):
                self.threads.add(threading.current_thread().name)
                if k == self.fail_at:
                    raise ValueError(f"page {k}: the source broke")
                self.read = k + 1
                yield k
        finally:
            self.closed_on = threading.current_thread().name


def test_every_page_prepared_in_order_on_the_reader_thread() -> None:
    src = Source(50)
    prepared_on: set[str] = set()

    def prepare(k: int) -> tuple[int, str]:
        prepared_on.add(threading.current_thread().name)
        return k, f"page {k}"

    with ReadAhead(src.pages(), prepare) as ahead:
        got = list(ahead)
    assert got == [(k, f"page {k}") for k in range(50)]
    assert src.threads == prepared_on == {"vangnet-read-ahead"}
    assert src.closed_on == "vangnet-read-ahead"


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_the_reader_stays_within_depth_of_the_loop(depth: int) -> None:
    src = Source(40)
    ahead_by: list[int] = []
    with ReadAhead(src.pages(), lambda k: k, depth) as ahead:
        for consumed, k in enumerate(ahead, start=1):
            assert k == consumed - 1
            threading.Event().wait(0.002)  # give the reader its chance to run ahead
            ahead_by.append(src.read - consumed)
    # at most `depth` waiting in the queue and one more made, waiting to be handed over
    assert max(ahead_by) <= depth + 1
    assert max(ahead_by) >= 1  # it did read ahead
    assert src.read == 40


def test_a_reader_error_arrives_after_the_pages_before_it() -> None:
    src = Source(10, fail_at=3)
    got: list[int] = []
    with (
        pytest.raises(ValueError, match="page 3: the source broke"),
        ReadAhead(src.pages(), lambda k: k) as ahead,
    ):
        for k in ahead:
            got.append(k)
    assert got == [0, 1, 2]
    assert src.closed_on == "vangnet-read-ahead"


def test_an_error_in_prepare_arrives_in_the_loop() -> None:
    def prepare(k: int) -> int:
        if k == 2:
            raise RuntimeError(f"page {k} cannot be written as JSON")
        return k

    src = Source(10)
    got: list[int] = []
    with (
        pytest.raises(RuntimeError, match="page 2 cannot"),
        ReadAhead(src.pages(), prepare) as ahead,
    ):
        got.extend(ahead)
    assert got == [0, 1]
    assert src.closed_on == "vangnet-read-ahead"


def test_a_failing_loop_stops_the_reader_and_closes_the_source() -> None:
    src = Source(10_000)
    with pytest.raises(KeyError), ReadAhead(src.pages(), lambda k: k, depth=2) as ahead:
        for k in ahead:
            if k == 5:
                raise KeyError("the ledger refused page 5")
    assert src.closed_on == "vangnet-read-ahead"  # closed, on its own thread
    assert src.read <= 5 + 1 + 2 + 1  # it did not read on to the end
    assert not any(t.name == "vangnet-read-ahead" for t in threading.enumerate())


def test_breaking_off_stops_the_reader() -> None:
    src = Source(10_000)
    with ReadAhead(src.pages(), lambda k: k) as ahead:
        for k in ahead:
            if k == 3:
                break
    assert src.closed_on == "vangnet-read-ahead"
    assert src.read < 10_000


def test_the_reader_runs_in_the_callers_context() -> None:
    RUN.set("flow-run-7")
    seen: list[str] = []

    def prepare(k: int) -> int:
        seen.append(RUN.get())
        return k

    with ReadAhead(iter(range(3)), prepare) as ahead:
        assert list(ahead) == [0, 1, 2]
    assert seen == ["flow-run-7"] * 3


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        ReadAhead(iter(()), lambda k: k, depth=0)
