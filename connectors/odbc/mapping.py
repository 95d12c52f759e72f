"""Source rows -> canonical DataFrames. Nothing is dropped: a value that cannot be read
becomes null and the row carries the reason in ``_errors`` for the validation stage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import phonenumbers

from ledger.records import DEBTOR_COLUMNS, ERP_PAYMENT_COLUMNS, INVOICE_COLUMNS


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def parse_cents(v: Any) -> int:
    """Money to integer cents, half-up. Accepts Decimal, int, '1234.56' and '1.234,56'."""
    if isinstance(v, bool):
        raise ValueError("not an amount")
    if isinstance(v, int):
        return v * 100
    if isinstance(v, float):
        v = repr(v)
    s = str(v).strip().replace("€", "").replace(" ", "")
    if "E" in s.upper():
        raise ValueError(f"{s[:40]!r} is in scientific notation: the export lost digits")
    if "," in s and "." in s and s.rfind(",") > s.rfind("."):
        s = s.replace(".", "").replace(",", ".")  # Dutch 1.234,56
    elif "," in s and "." not in s:
        s = s.replace(",", ".")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"{str(v)[:40]!r} is not an amount") from None
    if not d.is_finite():
        raise ValueError("not a finite amount")
    return int((d * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def parse_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    s = str(v).strip()
    try:
        return dt.date.fromisoformat(s[:10])
    except ValueError:
        pass
    for fmt in ("%d-%m-%Y", "%d/%m/%Y", "%d-%m-%y"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{s[:40]!r} is not a date")


def normal_phone(v: Any) -> str:
    s = str(v).strip()
    try:
        num = phonenumbers.parse(s, "NL")
    except phonenumbers.NumberParseException:
        return s
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _text(v: Any) -> str | None:
    return None if _blank(v) else str(v).strip()


def to_canonical(
    entity: str, records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    if entity == "debtors":
        return _debtors(records, columns)
    if entity == "invoices":
        return _invoices(records, columns)
    if entity == "payments":
        return _payments(records, columns)
    raise ValueError(f"unknown entity {entity!r}")


def _get(rec: Mapping[str, Any], columns: Mapping[str, str], name: str) -> Any:
    col = columns.get(name)
    return rec.get(col) if col else None


def _debtors(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for rec in records:
        errors: list[str] = []
        email = _text(_get(rec, columns, "email"))
        phone = _get(rec, columns, "phone")
        iban = _text(_get(rec, columns, "iban"))
        postcode = _text(_get(rec, columns, "postcode"))
        if postcode:
            compact = postcode.replace(" ", "").upper()
            postcode = f"{compact[:4]} {compact[4:]}" if len(compact) == 6 else postcode
        rows.append(
            {
                "debtor_id": _text(_get(rec, columns, "debtor_id")),
                "name": _text(_get(rec, columns, "name")),
                "email": email.lower() if email else None,
                "phone": None if _blank(phone) else normal_phone(phone),
                "iban": iban.replace(" ", "").upper() if iban else None,
                "street": _text(_get(rec, columns, "street")),
                "postcode": postcode,
                "city": _text(_get(rec, columns, "city")),
                "language": (_text(_get(rec, columns, "language")) or "nl").lower()[:2],
                "source_version": _text(_get(rec, columns, "source_version")),
                "_errors": "; ".join(errors) or None,
            }
        )
    return pd.DataFrame(rows, columns=[*DEBTOR_COLUMNS, "_errors"])


def _convert(
    rec: Mapping[str, Any],
    columns: Mapping[str, str],
    name: str,
    fn: Any,
    errors: list[str],
    required: bool,
) -> Any:
    raw = _get(rec, columns, name)
    if _blank(raw):
        if required:
            errors.append(f"{name}: missing")
        return None
    try:
        return fn(raw)
    except ValueError as exc:
        errors.append(f"{name}: {exc}")
        return None


def _invoices(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for rec in records:
        errors: list[str] = []

        def conv(
            name: str, fn: Any, required: bool = True, rec: Any = rec, errors: list[str] = errors
        ) -> Any:
            return _convert(rec, columns, name, fn, errors, required)

        amount = conv("amount_cents", parse_cents)
        open_ = conv("open_cents", parse_cents, required=False)
        ref = _text(_get(rec, columns, "payment_reference"))
        rows.append(
            {
                "invoice_id": _text(_get(rec, columns, "invoice_id")),
                "debtor_id": _text(_get(rec, columns, "debtor_id")),
                "invoice_date": conv("invoice_date", parse_date),
                "due_date": conv("due_date", parse_date),
                "amount_cents": amount,
                "open_cents": amount if open_ is None and amount is not None else open_,
                "costs_cents": conv("costs_cents", parse_cents, required=False) or 0,
                "interest_cents": conv("interest_cents", parse_cents, required=False) or 0,
                "currency": (_text(_get(rec, columns, "currency")) or "EUR").upper(),
                "payment_reference": ref.replace(" ", "") if ref else None,
                "paid_date": conv("paid_date", parse_date, required=False),
                "prior_reminders": conv("prior_reminders", int, required=False) or 0,
                "source_version": _text(_get(rec, columns, "source_version")),
                "_errors": "; ".join(errors) or None,
            }
        )
    df = pd.DataFrame(rows, columns=[*INVOICE_COLUMNS, "_errors"])
    for col in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
        df[col] = df[col].astype("Int64")
    return df


def _payments(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for rec in records:
        errors: list[str] = []
        rows.append(
            {
                "payment_id": _text(_get(rec, columns, "payment_id")),
                "debtor_id": _text(_get(rec, columns, "debtor_id")),
                "invoice_id": _text(_get(rec, columns, "invoice_id")),
                "paid_on": _convert(rec, columns, "paid_on", parse_date, errors, True),
                "amount_cents": _convert(rec, columns, "amount_cents", parse_cents, errors, True),
                "currency": (_text(_get(rec, columns, "currency")) or "EUR").upper(),
                "method": _text(_get(rec, columns, "method")),
                "source_version": _text(_get(rec, columns, "source_version")),
                "_errors": "; ".join(errors) or None,
            }
        )
    df = pd.DataFrame(rows, columns=[*ERP_PAYMENT_COLUMNS, "_errors"])
    df["amount_cents"] = df["amount_cents"].astype("Int64")
    return df
