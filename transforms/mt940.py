"""MT940 bank statements as the Dutch banks deliver them.

The envelope (tags ``:20:`` .. ``:62F:``, continuation lines, several statements per file,
bank header lines such as ``ABNANL2A`` / ``940`` / ``0000 01INGBNL2A...``) and the
``:61:`` statement line are SWIFT; the ``:86:`` information is each bank's own:

- structured, slash codewords (ING, Rabobank, ABN AMRO SEPA, ASN/SNS, Triodos, Knab):
  ``/EREF/``, ``/MARF/`` (mandate), ``/CSID/``, ``/CNTP/<iban>/<bic>/<name>/<city>/``,
  ``/REMI/USTD//<text>/`` or ``/REMI/STRD/CUR/<kenmerk>/``, ``/RTRN/<reason>/``,
  ``/PREF/``; ABN AMRO's ``/TRTP/.../IBAN/.../BIC/.../NAME/.../REMI/.../EREF/...``
- unstructured (older exports): free text, kept as the remittance; Rabobank's old format
  puts the counterparty account and name on the ``:61:`` line itself.

Output is the canonical ``PAYMENT_COLUMNS`` frame, one row per ``:61:`` entry. A line that
breaks the format raises ``StatementError`` naming its line number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import pandas as pd

from ledger.records import PAYMENT_COLUMNS
from transforms.statements import MAX_BYTES, StatementError, too_big

_TAG = re.compile(r"^:(\d{2}[A-Z]?):(.*)$")
_LINE61 = re.compile(
    r"^(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z](?=\d))?"
    r"(?P<amount>\d{1,15},\d{0,2})(?P<type>[NSF][A-Z0-9 ]{3})(?P<ref>.*?)(?://(?P<bankref>.*))?$"
)
_IBAN = re.compile(r"^([A-Z]{2}\d{2}[A-Z0-9]{10,30})\b")
_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
_GVC = re.compile(r"^\d{3}>")  # Triodos (and German-style) subfields: 000>10...>20...>21...
_SUBFIELD = re.compile(r">(\d{2})")
_BALANCE = re.compile(r"^[CD](\d{6})(?P<ccy>[A-Z]{3})")
CODEWORDS = (
    "EREF",
    "MARF",
    "CSID",
    "CNTP",
    "REMI",
    "RTRN",
    "PREF",
    "TRTP",
    "IBAN",
    "BIC",
    "NAME",
    "ORDP",
    "BENM",
    "ADDR",
    "ULTC",
    "ULTD",
    "PURP",
    "IREF",
    "SVCL",
    "ISDT",
    "EXCH",
    "CHGS",
    "FX",
)
_CODEWORD = re.compile(r"/(" + "|".join(CODEWORDS) + r")/")


def _date(yymmdd: str, lineno: int) -> dt.date:
    try:
        return dt.datetime.strptime(yymmdd, "%y%m%d").date()
    except ValueError:
        raise StatementError(f"line {lineno}: {yymmdd!r} is not a date (YYMMDD)") from None


def _entry_date(value: dt.date, mmdd: str, lineno: int) -> dt.date:
    try:
        d = dt.date(value.year, int(mmdd[:2]), int(mmdd[2:]))
    except ValueError:
        raise StatementError(f"line {lineno}: {mmdd!r} is not an entry date (MMDD)") from None
    # a booking in early January for a December value date (and the other way round)
    if (d - value).days > 180:
        d = d.replace(year=d.year - 1)
    elif (value - d).days > 180:
        d = d.replace(year=d.year + 1)
    return d


def parse_86(text: str) -> dict[str, str]:
    """The slash codewords of a structured ``:86:`` as a dict (empty when free text)."""
    flat = text.replace("\n", "")
    hits = list(_CODEWORD.finditer(flat))
    if not hits or hits[0].start() > 0:
        return {}
    out: dict[str, str] = {}
    for i, m in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(flat)
        out[m.group(1)] = flat[m.end() : end].strip("/")
    return out


def parse_subfields(text: str) -> dict[str, str]:
    """Triodos' ``:86:``: a three-digit code, then ``>NN`` subfields (``>20`` the
    counterparty's BIC, ``>21`` its IBAN, ``>22``..``>29`` name, address and description,
    ``>31`` the own account, ``>32``/``>33`` a name where given)."""
    flat = text.replace("\n", "")
    if not _GVC.match(flat):
        return {}
    out: dict[str, str] = {}
    hits = list(_SUBFIELD.finditer(flat))
    for i, m in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(flat)
        key = m.group(1)
        out[key] = out.get(key, "") + flat[m.end() : end]  # raw: words run on across fields
    return out


def _details(info: str, supplement: str) -> dict[str, Any]:
    words = parse_86(info)
    sub = {} if words else parse_subfields(info)
    iban = name = remittance = structured = e2e = reason = None
    if sub:
        texts = []
        for key in sorted(k for k in sub if "20" <= k <= "29"):
            v = sub[key].strip()
            if iban is None and _IBAN.match(v) and len(v.split()) == 1:
                iban = v
            elif key in ("20", "21") and _BIC.match(v):
                continue  # the counterparty's BIC
            else:  # fields are 27 wide and words run on; a shorter one ended a line
                texts.append(sub[key] if len(sub[key]) >= 27 else sub[key] + " ")
        name = " ".join(sub.get(k, "").strip() for k in ("32", "33")).strip() or None
        remittance = " ".join("".join(texts).split()) or None
    elif words:
        if "CNTP" in words:  # /CNTP/<account>/<bic>/<name>/<city>/
            parts = (words["CNTP"] + "////").split("/")
            iban, name = parts[0] or None, parts[2] or None
        iban = words.get("IBAN") or iban
        name = words.get("NAME") or name
        e2e = words.get("EREF") or None
        if e2e == "NOTPROVIDED":
            e2e = None
        reason = (words.get("RTRN") or "").split("/")[0] or None
        remi = words.get("REMI", "")
        if remi.startswith("STRD/"):  # STRD/CUR/<kenmerk> or STRD/ISO/<RF..>
            structured = remi.split("/")[-1] or None
        elif remi.startswith("USTD/"):
            remittance = remi.removeprefix("USTD/").strip("/") or None
        elif remi:
            remittance = remi
    else:
        lines = [ln.strip() for ln in info.splitlines() if ln.strip()]
        head = _IBAN.match(lines[0]) if lines else None
        if head:  # SNS / ASN / RegioBank: "<IBAN> <name>" first, then the description
            iban = head.group(1)
            name = lines[0][head.end() :].strip() or None
            lines = lines[1:]
        remittance = " ".join(" ".join(lines).split()) or None
        if supplement:  # account and name on the :61: line (Rabobank's old format, SNS)
            m = re.match(r"^\s*(\d{9,10}|[A-Z]{2}\d{2}[A-Z0-9]{10,30})?\s*(.*)$", supplement)
            if m:
                iban = iban or m.group(1)
                name = name or m.group(2).strip() or None
    return {
        "counterparty_iban": iban,
        "counterparty_name": name,
        "remittance": remittance,
        "structured_reference": structured,
        "end_to_end_id": e2e,
        "return_reason": reason,
    }


def parse_mt940(
    data: bytes, source_name: str = "statement", max_bytes: int = MAX_BYTES
) -> pd.DataFrame:
    too_big(data, source_name, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-15")  # ABN AMRO and older exports
    file_hash = hashlib.sha256(data).hexdigest()[:16]
    rows: list[dict[str, Any]] = []
    currency = "EUR"
    stmt = -1
    current: dict[str, Any] | None = None
    info: list[str] = []
    last_tag = None
    seen_tag = False

    def close() -> None:
        nonlocal current, info
        if current is not None:
            current.update(_details("\n".join(info), current.pop("_supplement", "")))
            rows.append(current)
        current, info = None, []

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        m = _TAG.match(line)
        if not m:
            if line.strip() in ("-", "-XXX", "-}") or line.startswith("-"):
                close()
                last_tag = None
            elif last_tag == "86" and current is not None:
                info.append(line)
            elif last_tag == "61" and current is not None:
                current["_supplement"] = (current.get("_supplement", "") + " " + line).strip()
            continue  # bank header lines (ABNANL2A, 940, 0000 01INGB...) and blank lines
        tag, value = m.groups()
        seen_tag = True
        if tag == "20":
            close()
            stmt += 1
        elif tag in ("60F", "60M"):
            b = _BALANCE.match(value)
            if not b:
                raise StatementError(
                    f"{source_name}: line {lineno}: :{tag}: {value[:30]!r} is not a balance"
                )
            currency = b.group("ccy")
        elif tag == "61":
            close()
            e = _LINE61.match(value)
            if not e:
                raise StatementError(
                    f"{source_name}: line {lineno}: :61: {value[:40]!r} is not a statement line"
                )
            value_date = _date(e.group("value"), lineno)
            booking = (
                _entry_date(value_date, e.group("entry"), lineno)
                if e.group("entry")
                else value_date
            )
            whole, _, frac = e.group("amount").partition(",")
            cents = int(whole) * 100 + int((frac + "00")[:2])
            mark = e.group("mark")
            sign = 1 if mark in ("C", "RD") else -1
            ref = e.group("ref")
            supplement = ""
            account = _IBAN.match(ref.strip())
            if account:  # SNS: the counterparty's IBAN where the reference would be
                supplement, ref = ref.strip(), ""
            elif len(ref) > 16:  # Rabobank: <account>   <name> after the reference field
                ref, supplement = ref[:16], ref[16:]
                if re.fullmatch(r"\d{9,10}", ref.strip()):  # the counterparty's (pre-IBAN) account
                    supplement = f"{ref.strip()} {supplement.strip()}"
                    ref = ""
            current = {
                "payment_id": f"{file_hash}-{max(stmt, 0)}-{len(rows)}",
                "booking_date": booking,
                "value_date": value_date,
                "amount_cents": sign * cents,
                "currency": currency,
                "bank_reference": (e.group("bankref") or ref.strip() or None),
                "reversal": mark.startswith("R"),
                "_supplement": supplement.strip(),
            }
            if current["bank_reference"] == "NONREF":
                current["bank_reference"] = e.group("bankref") or None
        elif tag == "86" and current is not None:
            info.append(value)
        elif tag in ("62F", "62M", "64", "65"):
            close()
        last_tag = tag if tag in ("61", "86") else None
    close()
    if not seen_tag:
        raise StatementError(f"{source_name}: no MT940 tags found (is this an MT940 file?)")
    return pd.DataFrame(rows, columns=list(PAYMENT_COLUMNS))


__all__ = ["CODEWORDS", "parse_86", "parse_mt940", "parse_subfields"]
