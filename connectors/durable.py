"""Files that last: written before the ledger records what they carry as done.

A channel whose delivery is a file (the outbox, letters) and the Schuldenknooppunt's
answers file are trusted once written: the ledger records the message as sent, or the
answer as given, and never writes it again. So a file must survive a power cut by then.
Its text is synced before it is renamed into place, and a rename (or a new folder) is
on disk only once the folder that holds the name is synced. ``Folders`` keeps the
folders a batch wrote names in, so each is synced once, after the batch's last rename.
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_path(path: Path) -> None:
    """``fsync`` of a file or a folder by its path: a file's text, or the names made,
    renamed or removed in a folder, are on disk when it returns."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Folders:
    """The folders one batch wrote names in, to be synced once at its end (``sync``)."""

    def __init__(self) -> None:
        self._written: dict[Path, None] = {}

    def make(self, folder: Path) -> Path:
        """``folder``, made where it is missing (with its missing parents); each new
        folder's parent is kept to sync (it holds the new name), and ``folder`` itself,
        for the names the batch will write in it."""
        if folder not in self._written and not folder.is_dir():
            new = [folder, *(p for p in folder.parents if not p.exists())]
            folder.mkdir(parents=True, exist_ok=True)
            self._written.update(dict.fromkeys(p.parent for p in reversed(new)))
        self._written[folder] = None
        return folder

    def write(self, final: Path, text: str, tmp: Path) -> None:
        """``text`` (UTF-8) into ``final`` by way of ``tmp`` in the same folder: written,
        synced, then renamed into place; its folder kept."""
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        self.replace(tmp, final)

    def replace(self, tmp: Path, final: Path) -> None:
        """``tmp`` (its text already synced) renamed to ``final``; its folder kept."""
        os.replace(tmp, final)
        self._written[final.parent] = None

    def sync(self) -> None:
        """Every kept folder synced, in the order first kept; then none is kept."""
        for folder in self._written:
            sync_path(folder)
        self._written.clear()


__all__ = ["Folders", "sync_path"]
