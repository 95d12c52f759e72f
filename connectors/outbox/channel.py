"""Files as a channel: ``<dir>/<channel>/<YYYY-MM-DD>/<message_id>.txt``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from connectors.durable import Folders
from ledger.records import OutboundMessage, Receipt


class OutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["outbox"] = "outbox"
    dir: str


class OutboxChannel:
    #: a file is written (fsync, rename, its folder's fsync) before ``send`` returns:
    #: ``lookup`` knows at once
    lookup_lags = False

    def __init__(self, name: str, settings: OutboxSettings) -> None:
        self.name = name
        self.root = Path(settings.dir) / name

    def _path(self, msg_id: str) -> Path | None:
        hits = list(self.root.glob(f"*/{msg_id}.txt"))
        return hits[0] if hits else None

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        """Each message into its file; returns once every file and its name are on disk
        (``connectors.durable``): the ledger then records the messages as sent."""
        receipts = []
        folders = Folders()
        for m in batch:
            day = m.send_after.date().isoformat() if m.send_after else "undated"
            folder = folders.make(self.root / day)
            final = folder / f"{m.message_id}.txt"
            head = {
                "message_id": m.message_id,
                "channel": self.name,
                "step": m.step,
                "to": m.to,
                "subject": m.subject,
            }
            text = json.dumps(head, ensure_ascii=False) + "\n\n" + m.body_text
            folders.write(final, text, folder / f".{m.message_id}.tmp")
            receipts.append(
                Receipt(m.message_id, "sent", provider_id=str(final.relative_to(self.root)))
            )
        folders.sync()
        return receipts

    def lookup(self, message_ids: Sequence[str]) -> Mapping[str, Receipt]:
        out = {}
        for mid in message_ids:
            p = self._path(mid)
            if p is not None:
                out[mid] = Receipt(mid, "sent", provider_id=str(p.relative_to(self.root)))
        return out
