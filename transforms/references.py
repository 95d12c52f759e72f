"""Payment references: the Dutch betalingskenmerk and ISO 11649 RF creditor references.

Betalingskenmerk rules (Betaalvereniging; DOMAIN.md "Payment references"):
7 digits without a check digit; 16 digits = check digit + 15; 9..14 digits = check digit
+ length code + digits. Weights from the rightmost digit leftwards 2, 4, 8, 5, 10, 9, 7,
3, 6, 1 (repeating); A = sum(digit * weight) over everything after the check digit
(length code included); C = 11 - (A mod 11), with 10 -> 1 and 11 -> 0.
"""

from __future__ import annotations

import operator

from stdnum import iso11649

_WEIGHTS = (2, 4, 8, 5, 10, 9, 7, 3, 6, 1)
_LENGTH_CODE = {7: 7, 8: 8, 9: 9, 10: 0, 11: 1, 12: 2}


_WEIGHTS_RIGHT_TO_LEFT = _WEIGHTS * 2  # a body holds at most 15 digits
_DIGIT = {str(d): d for d in range(10)}


def _check_digit(body: str) -> int:
    total = sum(map(operator.mul, map(_DIGIT.__getitem__, reversed(body)), _WEIGHTS_RIGHT_TO_LEFT))
    c = 11 - (total % 11)
    return 1 if c == 10 else (0 if c == 11 else c)


def compact(ref: str) -> str:
    if ref.isalnum():  # nothing to take out (the usual case: a reference as stored)
        return ref.upper()
    return "".join(ref.split()).replace(".", "").replace("-", "").upper()


def is_valid_betalingskenmerk(ref: str) -> bool:
    return _valid_betalingskenmerk(compact(ref))


def _valid_betalingskenmerk(ref: str) -> bool:
    if not (ref.isascii() and ref.isdigit()):  # "²" and "٣" are digits to str.isdigit
        return False
    n = len(ref)
    if n == 7:
        return True
    if n == 16 or 9 <= n <= 14:
        if n != 16 and ref[1] != str(_LENGTH_CODE[n - 2]):
            return False
        return int(ref[0]) == _check_digit(ref[1:])
    return False


def new_betalingskenmerk(number: int | str) -> str:
    """The 16-digit betalingskenmerk for ``number`` (at most 15 digits, zero-padded)."""
    digits = str(number)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 15:
        raise ValueError("a betalingskenmerk holds at most 15 digits after its check digit")
    body = digits.zfill(15)
    return f"{_check_digit(body)}{body}"


def is_valid_rf(ref: str) -> bool:
    return bool(iso11649.is_valid(ref))


def is_valid_reference(ref: str) -> bool:
    """True for a valid betalingskenmerk or ISO 11649 RF reference."""
    ref = compact(ref)
    return is_valid_rf(ref) if ref.startswith("RF") else _valid_betalingskenmerk(ref)


__all__ = [
    "compact",
    "is_valid_betalingskenmerk",
    "is_valid_reference",
    "is_valid_rf",
    "new_betalingskenmerk",
]
