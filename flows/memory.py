"""Freed memory handed back to the operating system at the end of a heavy stage.

glibc's allocator keeps what Python, pandas and the ODBC and SQLite libraries freed, for
reuse within the process; a stage that built frames of a million invoices leaves
hundreds of MB resident that no later stage of the cycle asks for again, in the cycle's
process and in every worker of its pool (which live for the whole cycle). Measured at
250,000 debtors: 180-240 MB given back after validate, after the bank lane and after
matching, in 7-11 ms each (``docs/performance.md``). Elsewhere than glibc this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
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


def releasing_memory(stage: Callable[P, R]) -> Callable[P, R]:
    """A stage that gives its freed memory back when it returns (or raises)."""

    @wraps(stage)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return stage(*args, **kwargs)
        finally:
            release_memory()

    return run


__all__ = ["release_memory", "releasing_memory"]
