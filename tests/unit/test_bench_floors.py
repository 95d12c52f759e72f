"""The bench's floor for send writes what the outbox channel must: every file synced,
renamed into place, and the folder synced after the last rename."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import cycle


def test_the_durable_floor_syncs_each_file_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(cycle.os, "fsync", spy)
    folder = tmp_path / "floor"
    cycle._bare_send(folder, 5, 40, durable=True)

    assert sorted(p.name for p in folder.iterdir()) == [f"{i:08d}.txt" for i in range(5)]
    assert {p.read_text() for p in folder.iterdir()} == {"x" * 40}
    assert synced == [str(folder / f".{i:08d}.tmp") for i in range(5)] + [str(folder)]


def test_the_bare_send_syncs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cycle.os, "fsync", lambda fd: pytest.fail("synced"))
    cycle._bare_send(tmp_path / "bare", 3, 10)
    assert len(list((tmp_path / "bare").iterdir())) == 3
