"""OAuth tokens kept in the ledger, one row per creditor and source.

Several workers may refresh the same connection: Exact Online rotates its refresh token,
so two workers refreshing at once would leave one of them with a dead token. A refresh
therefore happens under a row lock (``locked``): the first worker refreshes and stores,
the second sees the fresh token when it gets the lock and uses it instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from ledger import schema as s
from ledger.store import insert_ignore, utcnow


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expiry: int  # epoch seconds


class TokenStore:
    def __init__(self, engine: Engine, creditor_id: str, source: str) -> None:
        self.engine, self.creditor_id, self.source = engine, creditor_id, source

    def _where(self) -> tuple:
        t = s.oauth_tokens
        return (t.c.creditor_id == self.creditor_id, t.c.source == self.source)

    def load(self) -> Tokens | None:
        with self.engine.connect() as conn:
            return self._read(conn)

    def _read(self, conn: Connection) -> Tokens | None:
        t = s.oauth_tokens
        row = conn.execute(
            select(t.c.access_token, t.c.refresh_token, t.c.access_expiry).where(*self._where())
        ).first()
        if row is None or not row.refresh_token:
            return None
        return Tokens(row.access_token or "", row.refresh_token, int(row.access_expiry or 0))

    @contextlib.contextmanager
    def locked(self) -> Iterator[tuple[Tokens | None, Connection]]:
        """A transaction holding the row's write lock, with the tokens as stored now."""
        with self.engine.begin() as conn:
            insert_ignore(
                conn,
                s.oauth_tokens,
                [
                    {
                        "creditor_id": self.creditor_id,
                        "source": self.source,
                        "access_token": "",
                        "refresh_token": "",
                        "access_expiry": 0,
                        "updated_at": utcnow(),
                    }
                ],
            )
            # touching the row takes the lock on PostgreSQL and SQLite alike
            conn.execute(update(s.oauth_tokens).where(*self._where()).values(updated_at=utcnow()))
            yield self._read(conn), conn

    def save(self, conn: Connection, tokens: Tokens) -> None:
        conn.execute(
            update(s.oauth_tokens)
            .where(*self._where())
            .values(
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                access_expiry=tokens.access_expiry,
                updated_at=utcnow(),
            )
        )


__all__ = ["TokenStore", "Tokens"]
