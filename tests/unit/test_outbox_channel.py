"""The outbox channel returns only once a batch's files and their names are on disk: the
ledger records a message as sent on that word, and never sends it again."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from connectors.outbox import OutboxChannel, OutboxSettings
from connectors.outbox import channel as outbox
from ledger.records import OutboundMessage


def _msg(mid: str, day: int | None) -> OutboundMessage:
    return OutboundMessage(
        message_id=mid,
        creditor_id="c1",
        debtor_id="d1",
        channel="letter",
        step="friendly_reminder",
        to="Dorpsstraat 1\n1234 AB Ergens",
        subject="Uw rekening",
        body_text=f"Beste klant, {mid}",
        send_after=dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC) if day else None,
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (of the path its descriptor names) and rename, in order."""
    seen: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def spy_replace(src: Path, dst: Path) -> None:
        seen.append(("rename", str(dst)))
        replace(src, dst)

    monkeypatch.setattr(outbox.os, "fsync", spy_fsync)
    monkeypatch.setattr(outbox.os, "replace", spy_replace)
    return seen


def test_each_folder_written_in_is_synced_after_its_last_rename(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    box = OutboxChannel("letter", OutboxSettings(dir=str(tmp_path / "out")))
    got = box.send([_msg("m1", 24), _msg("m2", 25), _msg("m3", 24), _msg("m4", None)])

    assert [r.status for r in got] == ["sent"] * 4
    assert [r.provider_id for r in got] == [
        "2026-11-24/m1.txt",
        "2026-11-25/m2.txt",
        "2026-11-24/m3.txt",
        "undated/m4.txt",
    ]
    head, _, body = (tmp_path / "out/letter/2026-11-24/m3.txt").read_text().partition("\n\n")
    assert json.loads(head)["message_id"] == "m3" and body == "Beste klant, m3"
    assert not list((tmp_path / "out").rglob("*.tmp"))

    root = tmp_path / "out" / "letter"
    last_rename = max(i for i, (what, _) in enumerate(calls) if what == "rename")
    synced_after = {p for what, p in calls[last_rename + 1 :] if what == "fsync"}
    # the three day folders, and where each new folder's name is: the channel's folder,
    # the outbox's, and tmp_path (which held no "out" before)
    assert synced_after == {
        str(root / "2026-11-24"),
        str(root / "2026-11-25"),
        str(root / "undated"),
        str(root),
        str(tmp_path / "out"),
        str(tmp_path),
    }
    # each message's own text was synced before its rename
    for mid, day in (("m1", "2026-11-24"), ("m2", "2026-11-25"), ("m4", "undated")):
        at = calls.index(("rename", str(root / day / f"{mid}.txt")))
        assert calls[at - 1] == ("fsync", str(root / day / f".{mid}.tmp"))


def test_a_folder_there_before_is_synced_alone(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    box = OutboxChannel("letter", OutboxSettings(dir=str(tmp_path)))
    box.send([_msg("m1", 24)])
    calls.clear()

    box.send([_msg("m2", 24), _msg("m3", 24)])

    day = tmp_path / "letter" / "2026-11-24"
    assert [p for what, p in calls if what == "fsync" and not p.endswith(".tmp")] == [str(day)]
    assert calls[-1] == ("fsync", str(day))
    assert sorted(p.name for p in day.iterdir()) == ["m1.txt", "m2.txt", "m3.txt"]
