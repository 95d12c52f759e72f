"""Reading a source a few pages ahead of the writes that stage it.

Ingest reads a page (a driver's fetch, the mapping to canonical records, the JSON of
each record), then stages it (the ledger's insert and commit), then reads the next. The
fetch and the ledger's statements run in C with the GIL released; the mapping and the
JSON are Python. With the reading on a thread of its own, one page is written while the
next is read, and the two share the process's cores instead of taking turns. Only
partly: an ODBC driver gives the GIL up for each row it fetches and waits for it again,
so the overlap is largest where the writes wait outside Python (a PostgreSQL server),
and nothing is gained where the other core is busy already (the cycle's bank lane).
Figures: docs/performance.md, "Third session of 2026-12-06".

Nothing about what is staged changes: the writes happen on the caller's thread, in the
order read, each page with its cursor in one transaction. A page read ahead and not
written (the writer failed, or stopped) is read again next time, as before: the cursor
moved only with what was written. An error in the reader reaches the caller after the
pages read before it, as a loop over the reader would meet it.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead(Generic[T, U]):
    """``with ReadAhead(pages, prepare, depth) as ahead: for item in ahead: ...``:
    ``prepare(page)`` of each page of ``pages``, made on a thread of its own at most
    ``depth`` items ahead of the loop, in order. Leaving the block (done, failed or
    broken off) stops the reader and waits for it: a generator is closed on its own
    thread, so its ``finally`` (a connection closed) runs there. The thread runs in a
    copy of the caller's context (Prefect's run context: its logs go to the run)."""

    def __init__(self, pages: Iterable[T], prepare: Callable[[T], U], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._pages, self._prepare = pages, prepare
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(
            target=ctx.run, args=(self._run,), name="vangnet-read-ahead", daemon=True
        )

    def _put(self, item: object) -> bool:
        """Hand an item over; False when the loop stopped wanting them."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        it = iter(self._pages)
        try:
            for page in it:
                if self._stop.is_set() or not self._put(self._prepare(page)):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the loop, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> ReadAhead[T, U]:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[U]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
