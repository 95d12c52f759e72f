"""Freed memory handed back to the operating system at the end of a heavy stage.

glibc's allocator keeps what Python, pandas and the ODBC and SQLite libraries freed, for
reuse within the process; a stage that built frames of a million invoices leaves
hundreds of MB resident that no later stage of the cycle asks for again, in the cycle's
process and in every worker of its pool (which live for the whole cycle). Measured at
250,000 debtors: 180-240 MB given back after validate, after the bank lane and after
matching, in 7-11 ms each (``docs/performance.md``). Elsewhere than glibc this does
nothing.

While a heavy stage runs, Python's cyclic garbage collector is asked to do less
(``collecting_less``): what the process held before the stage (its imports, the pool's
and Prefect's objects) is set aside from the collector's scans (``gc.freeze``), and a
young collection waits for 50,000 new container objects instead of 700. The stages
build and drop millions of small objects (rows, tuples, the matcher's candidates), and
free almost all of them by reference counting; the collector's walks over everything
alive found next to nothing. Measured on the matcher alone (``bench.matching``, 300,000
lines against 1,000,000 items): 21.6-23.9 s with the defaults, 18.3-19.3 s so, the
same as with the collector off (18.4-19.4 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_memory() -> bool:
    """Give the heap's free pages back to the OS (``malloc_trim``); whether it could.
    No garbage collection: reference counting has freed a stage's frames by the time it
    returns, and a full collection of a large heap costs 0.1-0.3 s."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


YOUNG_OBJECTS = 50_000
"""New container objects (lists, dicts, tuples, instances) between two young
collections while a stage runs; Python's default is 700. Garbage in reference cycles
waits at most this long for its collection: some MB, against a stage's hundreds."""

_collecting = threading.Lock()
_stages_running = 0
_thresholds: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def collecting_less() -> Iterator[None]:
    """Fewer, smaller garbage collections while a heavy stage runs (see the module's
    docstring). The process's settings come back when the last stage running in it
    (stages may run side by side in threads) ends, as do the objects set aside: a cycle
    among them that became garbage meanwhile goes at the next full collection."""
    global _stages_running, _thresholds
    with _collecting:
        if _stages_running == 0:
            _thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_OBJECTS, *_thresholds[1:])
        _stages_running += 1
    try:
        yield
    finally:
        with _collecting:
            _stages_running -= 1
            if _stages_running == 0:
                gc.set_threshold(*_thresholds)
                gc.unfreeze()


def releasing_memory(stage: Callable[P, R]) -> Callable[P, R]:
    """A heavy stage: it runs collecting less garbage, and gives its freed memory back
    when it returns (or raises)."""

    @wraps(stage)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with collecting_less():
                return stage(*args, **kwargs)
        finally:
            release_memory()

    return run


__all__ = ["YOUNG_OBJECTS", "collecting_less", "release_memory", "releasing_memory"]
