"""Freed memory handed back at the end of a heavy stage (``flows.memory``)."""

from __future__ import annotations

import pytest

from flows.memory import release_memory, releasing_memory


def _own_bytes() -> int:
    """Resident pages that are not file-backed: the heap."""
    import os

    with open("/proc/self/statm") as fh:
        fields = fh.read().split()
    return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")


def test_freed_heap_goes_back_to_the_os() -> None:
    # many small blocks (below glibc's mmap threshold: they live in the heap, which free()
    # alone does not shrink while a later block pins its top)
    blocks = [bytearray(4096) for _ in range(60_000)]  # about 250 MB
    pin = bytearray(4096)
    held = _own_bytes()
    del blocks
    assert release_memory() is True  # glibc, as on every machine this runs on
    assert _own_bytes() < held - 150 * 2**20
    del pin


def test_a_stage_releases_when_it_returns_and_when_it_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flows.memory

    calls: list[str] = []
    monkeypatch.setattr(flows.memory, "release_memory", lambda: calls.append("released") or True)

    @releasing_memory
    def stage(fail: bool) -> str:
        calls.append("ran")
        if fail:
            raise ValueError("broken export")
        return "done"

    assert stage(False) == "done" and stage.__name__ == "stage"
    with pytest.raises(ValueError, match="broken export"):
        stage(True)
    assert calls == ["ran", "released", "ran", "released"]


def test_a_stage_collects_less_and_the_process_gets_its_settings_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from flows.memory import YOUNG_OBJECTS, collecting_less

    before = gc.get_threshold()
    calls: list[str] = []  # the collector's freezes and thaws, in order
    for name in ("freeze", "unfreeze"):
        real = getattr(gc, name)
        monkeypatch.setattr(gc, name, lambda real=real, name=name: (calls.append(name), real())[1])
    seen: list[tuple[tuple[int, int, int], int, list[str]]] = []

    @releasing_memory
    def stage() -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count(), list(calls)))
        with collecting_less():  # a stage within: the settings hold until the outer one ends
            pass
        seen.append((gc.get_threshold(), gc.get_freeze_count(), list(calls)))
        raise ValueError("broken export")

    with pytest.raises(ValueError, match="broken export"):
        stage()
    assert seen[0][0] == (YOUNG_OBJECTS, *before[1:]) and seen[0][1] > 0
    assert seen[0][2] == ["freeze"]
    # the stage within neither thawed nor froze again (the frozen count itself can drop
    # meanwhile: a frozen object another thread lets go of is freed; it did, once, here)
    assert seen[1][0] == seen[0][0] and seen[1][2] == ["freeze"] and 0 < seen[1][1] <= seen[0][1]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert calls == ["freeze", "unfreeze"]
