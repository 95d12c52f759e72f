"""Files the ledger trusts once written last through a power cut: each text synced
before its rename, and every folder that got a new name synced after the batch's last
rename (``connectors.durable``). The outbox and letters channels return only then (the
ledger records the message as sent on that word, and never sends it again), and so does
the Schuldenknooppunt's answers file."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from connectors import durable
from connectors.durable import Folders
from connectors.letters import LetterChannel, LetterSettings
from connectors.outbox import OutboxChannel, OutboxSettings
from connectors.schuldenknooppunt import PortalExchange, PortalExchangeSettings
from connectors.schuldenknooppunt.messages import Reply
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

    monkeypatch.setattr(durable.os, "fsync", spy_fsync)
    monkeypatch.setattr(durable.os, "replace", spy_replace)
    return seen


def _after_last_rename(calls: list[tuple[str, str]]) -> list[str]:
    last = max(i for i, (what, _) in enumerate(calls) if what == "rename")
    return [p for what, p in calls[last + 1 :] if what == "fsync"]


def test_folders_sync_each_new_name_once_after_the_renames(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    (tmp_path / "a").mkdir()
    folders = Folders()
    day = folders.make(tmp_path / "a" / "b" / "c")
    assert day.is_dir()
    assert folders.make(day) == day  # made once, kept once
    for name in ("x", "y"):
        tmp = day / f".{name}.tmp"
        tmp.write_text(name)
        durable.sync_path(tmp)
        folders.replace(tmp, day / name)

    folders.sync()

    # "a" was there: b's name is in a, c's in b, and x and y in c; each synced once
    assert _after_last_rename(calls) == [
        str(tmp_path / "a"),
        str(tmp_path / "a" / "b"),
        str(day),
    ]
    calls.clear()
    folders.sync()  # a synced batch keeps nothing
    assert calls == []


def test_a_letter_is_on_disk_with_its_meta_before_send_returns(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    letters = LetterChannel(
        "letter",
        LetterSettings(dir="letters"),
        tmp_path,
        "Woonstichting De Vang",
        today=dt.date(2026, 11, 24),
    )
    (receipt,) = letters.send([_msg("L1", None)])  # undated: the channel's today

    day = tmp_path / "letters" / "2026-11-24"
    assert receipt.status == "sent" and receipt.provider_id == "2026-11-24/L1.pdf"
    assert (day / "L1.pdf").read_bytes().startswith(b"%PDF")
    assert (day / "L1.meta").read_text().endswith(";1234 AB")
    assert sorted(p.name for p in day.iterdir()) == ["L1.meta", "L1.pdf"]
    renames = [p for what, p in calls if what == "rename"]
    # the meta first: a letter whose PDF exists (``lookup``) has its meta for the batch
    assert renames == [str(day / "L1.meta"), str(day / "L1.pdf")]
    pdf_at = calls.index(("rename", str(day / "L1.pdf")))
    assert ("fsync", str(day / ".L1.part")) in calls[:pdf_at]
    meta_at = calls.index(("rename", str(day / "L1.meta")))
    assert ("fsync", str(day / ".L1.meta.part")) in calls[:meta_at]
    assert _after_last_rename(calls) == [str(tmp_path), str(tmp_path / "letters"), str(day)]


def test_the_answers_file_is_on_disk_before_the_round_is_recorded(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    portal = PortalExchange(PortalExchangeSettings(inbox_dir="in", outbox_dir="out"), tmp_path)
    reply = Reply(
        reply_id="A1",
        type="geen_medewerking",
        in_reply_to="M1",
        creditor_code="WDV",
        client_number="K1",
        reason="schuld betwist",
        created_on=dt.date(2026, 11, 24),
    )

    portal.post_replies([reply])

    answers = tmp_path / "out" / "antwoorden-20261124.csv"
    assert "A1" in answers.read_text(encoding="utf-8-sig")
    assert calls.index(("fsync", str(answers.with_suffix(".csv.tmp")))) < calls.index(
        ("rename", str(answers))
    )
    assert _after_last_rename(calls) == [str(tmp_path), str(tmp_path / "out")]


def test_the_outbox_syncs_each_folder_it_wrote_in_after_its_last_rename(
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
    # the three day folders, and where each new folder's name is: the channel's folder,
    # the outbox's, and tmp_path (which held no "out" before)
    assert set(_after_last_rename(calls)) == {
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


def test_an_outbox_folder_there_before_is_synced_alone(
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
