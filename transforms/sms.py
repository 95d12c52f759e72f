"""SMS length: GSM-7 or Unicode (UCS-2), and how many segments a text costs.

GSM 03.38: 160 characters in one GSM-7 message, 153 per part when concatenated; the
extension table (``^{}\\[~]|€`` and form feed) costs two characters each. A single
character outside the alphabet turns the whole text into UCS-2: 70, or 67 per part.
"""

from __future__ import annotations

import unicodedata

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def length(text: str) -> tuple[str, int]:
    """(encoding, length in that encoding's characters)."""
    if is_gsm7(text):
        return "gsm7", sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return "unicode", len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    enc, n = length(text)
    single, part = (160, 153) if enc == "gsm7" else (70, 67)
    if n <= single:
        return 1
    return -(-n // part)


def to_gsm7(text: str) -> str:
    """The text in the GSM-7 alphabet where it can be (accents folded: "Ş" -> "S",
    "’" -> "'"), so one foreign letter in a name does not double the cost."""
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        folded = {"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}.get(ch)
        if folded is None:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            folded = base if base else "?"
        out.append(folded)
    return "".join(out)


__all__ = ["is_gsm7", "length", "segments", "to_gsm7"]
