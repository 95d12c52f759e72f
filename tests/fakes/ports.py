"""In-memory fakes of the ports, for unit tests of the logic above them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ledger.records import OutboundMessage, Receipt, WriteBack, WriteResult


class MemoryChannel:
    def __init__(self, name: str = "email", fail: set[str] | None = None) -> None:
        self.name = name
        self.delivered: dict[str, OutboundMessage] = {}
        self.calls = 0
        self.fail = fail or set()

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        self.calls += 1
        out = []
        for m in batch:
            if m.debtor_id in self.fail:
                out.append(Receipt(m.message_id, "failed", error="rejected"))
                continue
            self.delivered[m.message_id] = m
            out.append(Receipt(m.message_id, "sent", provider_id=f"p-{m.message_id}"))
        return out

    def lookup(self, message_ids: Sequence[str]) -> Mapping[str, Receipt]:
        return {
            m: Receipt(m, "sent", provider_id=f"p-{m}") for m in message_ids if m in self.delivered
        }


class MemoryWriter:
    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.applied: dict[str, dict[str, object]] = {}

    def write(self, changes: Sequence[WriteBack]) -> Sequence[WriteResult]:
        out = []
        for ch in changes:
            if self.versions.get(ch.record_id) != ch.expected_version:
                out.append(WriteResult(ch.change_id, "conflict"))
                continue
            self.applied[ch.record_id] = dict(ch.values)
            out.append(WriteResult(ch.change_id, "applied"))
        return out
