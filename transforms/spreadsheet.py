"""Cells of the CSV files vangnet writes for people to open in a spreadsheet."""

from __future__ import annotations


def safe_cell(v: object) -> str:
    """No formula injection: a text cell starting with = + - @ (or a tab/CR) is quoted."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


__all__ = ["safe_cell"]
