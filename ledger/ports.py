"""The seams every connector fits (see ARCHITECTURE.md, "Ports").

Protocols only: connectors implement them, flows use them, unit tests replace them
with the in-memory fakes in ``tests/fakes``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from ledger.records import OutboundMessage, Receipt, WriteBack, WriteResult

Cursor = Mapping[str, Any]


class Page:
    """A page of records and the cursor that is valid once the page is committed."""

    __slots__ = ("frame", "cursor")

    def __init__(self, frame: pd.DataFrame, cursor: Cursor) -> None:
        self.frame = frame
        self.cursor = cursor


class SourceReader(Protocol):
    def read(self, entity: str, since: Cursor) -> Iterator[Page]:
        """Pages of ``entity`` changed after ``since``; the caller commits, then stores
        ``page.cursor``. A cursor never runs ahead of committed data."""
        ...


class StatusWriter(Protocol):
    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        """Apply each change once; a change whose record moved on is a ``conflict``."""
        ...


class Channel(Protocol):
    name: str

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]: ...

    def lookup(self, message_ids: Sequence[str]) -> Mapping[str, Receipt]:
        """For ambiguous sends: which of these did the provider already accept?"""
        ...


class DebtHelpExchange(Protocol):
    """The Schuldenknooppunt (connectors/schuldenknooppunt): messages in, answers out.

    ``fetch_inbox`` returns every waiting message (``InMessage``, or ``Unreadable`` for
    one that cannot be used); the caller commits them to the ledger and only then calls
    ``acknowledge`` with their ids, so a crash in between fetches them again instead of
    losing them. ``post_reply`` sends one ``Reply``; the same reply id sent twice must
    be harmless (the hub and the portal files deduplicate on it)."""

    def fetch_inbox(self) -> Sequence[Any]: ...

    def acknowledge(self, message_ids: Sequence[str]) -> None: ...

    def post_reply(self, reply: Any) -> None: ...
