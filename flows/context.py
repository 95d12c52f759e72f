"""What every stage needs: the creditor's configuration, the ledger and the clock."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from flows.config import CreditorConfig, load
from ledger.store import ensure_creditor, open_ledger
from transforms.contact_window import AMS

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One migrated engine per ledger URL per process."""
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = open_ledger(url)
        return _ENGINES[url]


def forget_engines(match: str) -> None:
    """Drop (and dispose) the cached engines whose URL contains ``match``: a ledger file
    about to be replaced, a test database about to be dropped."""
    with _LOCK:
        for url in [u for u in _ENGINES if match in u]:
            _ENGINES.pop(url).dispose()


@dataclass(frozen=True)
class Ctx:
    config_path: str
    now_iso: str  # the cycle's clock, timezone-aware ISO 8601

    @cached_property
    def cfg(self) -> CreditorConfig:
        return load(self.config_path)

    @cached_property
    def now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.now_iso)

    @cached_property
    def today(self) -> dt.date:  # once: a timezone conversion per call cost 1.5 s per 50k
        return self.now.astimezone(AMS).date()

    @property
    def creditor_id(self) -> str:
        return self.cfg.creditor.id

    @cached_property
    def engine(self) -> Engine:
        eng = engine_for(self.cfg.ledger_url())
        with eng.begin() as conn:
            ensure_creditor(
                conn,
                self.creditor_id,
                self.cfg.creditor.name,
                self.cfg.creditor.sector,
                self.cfg.sha256,
            )
        return eng

    def __getstate__(self) -> dict[str, str]:
        """Only the path and the clock travel (to a Dask worker, say); each process
        loads the configuration and opens its own engine."""
        return {"config_path": self.config_path, "now_iso": self.now_iso}

    def __setstate__(self, state: dict[str, str]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def var_dir(self, *parts: str) -> Path:
        p = Path(self.cfg.base_dir, "var", self.creditor_id, *parts)
        p.mkdir(parents=True, exist_ok=True)
        return p


def clock(now: dt.datetime | str | None = None) -> dt.datetime:
    """The cycle's clock: now, or an ISO 8601 moment (Europe/Amsterdam if it has no zone)."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(now) if isinstance(now, str) else now
    return moment if moment.tzinfo else moment.replace(tzinfo=AMS)


def make_ctx(config_path: str, now: dt.datetime | str | None = None) -> Ctx:
    return Ctx(str(config_path), clock(now).isoformat())
