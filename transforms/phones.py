"""Phone numbers, as libphonenumber (region NL) reads them, with a fast path for Dutch ones.

``normal_phone`` gives the E.164 form the ledger keeps; ``valid_phone`` says whether a
stored number is one libphonenumber holds valid. Parsing a number with libphonenumber
costs 20-30 µs, which at 250,000 debtors is 12 s of a daily cycle, twice (once when a
connector maps the export, once when validation checks it). Nearly every number in a
Dutch creditor's export is a Dutch number in one of a few shapes (``06-12345678``,
``+31 6 1234 5678``, ``0031 20 123 4567``), so those are read with one regular expression
and judged against libphonenumber's own metadata for NL (the same patterns and possible
lengths that ``phonenumbers.is_valid_number`` walks). Anything else goes to
libphonenumber. The verdicts are the same: ``tests/unit/test_phones.py`` compares both
over every four-digit prefix and over random numbers in every shape.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata

# what an export puts between the digits; libphonenumber ignores these too
_SEPARATORS = str.maketrans("", "", " -./\u00a0")
# a Dutch number written nationally (0...), internationally (+31 / 0031), nine digits
# after the prefix, the first of them not 0 (a "+31 0..." goes to libphonenumber)
_DUTCH = re.compile(r"(?:0|\+31|0031)([1-9][0-9]{8})")
_E164_NL = re.compile(r"\+31([1-9][0-9]{8})")


def _descs() -> tuple[tuple[frozenset[int], re.Pattern[str]], list[Any]]:
    m = PhoneMetadata.metadata_for_region("NL")
    assert m is not None

    def desc(d: Any) -> tuple[frozenset[int], re.Pattern[str]] | None:
        if d is None or not d.national_number_pattern:
            return None
        return frozenset(d.possible_length or ()), re.compile(d.national_number_pattern)

    general = desc(m.general_desc)
    assert general is not None
    kinds = (
        m.premium_rate,
        m.toll_free,
        m.shared_cost,
        m.voip,
        m.personal_number,
        m.pager,
        m.uan,
        m.voicemail,
        m.fixed_line,
        m.mobile,
    )
    return general, [d for d in map(desc, kinds) if d is not None]


_GENERAL, _KINDS = _descs()


def _matches(nsn: str, desc: tuple[frozenset[int], re.Pattern[str]]) -> bool:
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


@functools.cache
def _any_kind(length: int) -> re.Pattern[str] | None:
    """The patterns of the kinds that allow ``length`` digits, as one alternation: one
    call into ``re`` a number instead of one a kind, up to ten for a mobile number
    (tried last). ``fullmatch`` of the alternation is a full match of any one of them.
    None when no kind allows the length."""
    found = [p.pattern for lengths, p in _KINDS if not lengths or length in lengths]
    return re.compile("|".join(f"(?:{p})" for p in found)) if found else None


def _valid_nsn(nsn: str) -> bool:
    """libphonenumber's ``_number_type_helper(nsn, NL) != UNKNOWN``: the general pattern,
    then any one kind (fixed line, mobile, toll free, ...)."""
    if not _matches(nsn, _GENERAL):
        return False
    kinds = _any_kind(len(nsn))
    return kinds is not None and kinds.fullmatch(nsn) is not None


def normal_phone(value: Any) -> str:
    """The E.164 form of a number as an export wrote it; unparseable text as it came."""
    s = str(value).strip()
    m = _DUTCH.fullmatch(s.translate(_SEPARATORS))
    if m is not None:
        return "+31" + m.group(1)
    return normal_by_libphonenumber(s)


def valid_phone(value: Any) -> bool:
    """A number in international form that libphonenumber holds valid."""
    s = str(value)
    m = _E164_NL.fullmatch(s)
    if m is not None:
        return _valid_nsn(m.group(1))
    return valid_by_libphonenumber(s)


def normal_by_libphonenumber(value: Any) -> str:
    """``normal_phone`` without the fast path: libphonenumber's E.164 form."""
    s = str(value).strip()
    try:
        num = phonenumbers.parse(s, "NL")
    except phonenumbers.NumberParseException:
        return s
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def valid_by_libphonenumber(value: Any) -> bool:
    """``valid_phone`` without the fast path: libphonenumber's verdict."""
    s = str(value)
    try:
        num = phonenumbers.parse(s, "NL")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(num) and s.startswith("+")


__all__ = ["normal_phone", "valid_phone"]
