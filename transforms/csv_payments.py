"""Payment exports as CSV, with a column mapping per bank or ERP.

Banks' and ERPs' CSV exports differ in delimiter, encoding, decimal comma, date format
and how they say "debit" (a minus sign, a separate column, or a column like ING's
``Af Bij``). The mapping says which; a row that breaks it raises ``StatementError``
naming the line and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ledger.records import PAYMENT_COLUMNS
from transforms.statements import MAX_BYTES, StatementError, too_big


class CsvMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = ";"
    encoding: str = "utf-8-sig"
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = True
    columns: dict[str, str] = Field(
        description="canonical name (booking_date, amount, currency, counterparty_iban,"
        " counterparty_name, remittance, end_to_end_id, bank_reference, value_date) -> CSV header"
    )
    direction_column: str | None = Field(
        None, description="a column saying debit or credit, e.g. 'Af Bij'"
    )
    debit_values: list[str] = Field(default_factory=lambda: ["Af", "D", "Debit"])
    sign: Literal["as_is", "debit_column"] = "as_is"


def _amount(raw: str, decimal_comma: bool) -> int:
    s = raw.strip().replace("€", "").replace(" ", "")
    s = s.replace(".", "").replace(",", ".") if decimal_comma else s.replace(",", "")
    negative = s.startswith("-")
    whole, _, frac = s.lstrip("+-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ValueError(f"{raw!r} is not an amount")
    cents = int(whole) * 100 + int((frac + "00")[:2])
    return -cents if negative else cents


def parse_csv_payments(
    data: bytes, mapping: CsvMapping, source_name: str = "export.csv", max_bytes: int = MAX_BYTES
) -> pd.DataFrame:
    too_big(data, source_name, max_bytes)
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise StatementError(
            f"{source_name}: not {mapping.encoding} (byte {exc.start}); set the encoding"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    try:
        return _rows(reader, data, mapping, source_name)
    except csv.Error as exc:
        raise StatementError(f"{source_name}: line {reader.line_num}: {exc}") from None


def _rows(
    reader: csv.DictReader[str], data: bytes, mapping: CsvMapping, source_name: str
) -> pd.DataFrame:
    header = reader.fieldnames or []
    missing = [
        h
        for h in [
            *mapping.columns.values(),
            *([mapping.direction_column] if mapping.direction_column else []),
        ]
        if h not in header
    ]
    if missing:
        raise StatementError(
            f"{source_name}: line 1: column(s) {', '.join(map(repr, missing))} not in the header"
        )
    file_hash = hashlib.sha256(data).hexdigest()[:16]
    rows: list[dict[str, Any]] = []
    col = mapping.columns
    for i, rec in enumerate(reader):
        lineno = i + 2

        def get(name: str, rec: dict[str, Any] = rec) -> str | None:
            h = col.get(name)
            v = rec.get(h) if h else None
            return v.strip() if isinstance(v, str) and v.strip() else None

        try:
            booked = dt.datetime.strptime(get("booking_date") or "", mapping.date_format).date()
        except ValueError:
            raise StatementError(
                f"{source_name}: line {lineno}: {col['booking_date']!r} "
                f"{get('booking_date')!r} is not a date ({mapping.date_format})"
            ) from None
        value_raw = get("value_date")
        try:
            value_date = (
                dt.datetime.strptime(value_raw, mapping.date_format).date() if value_raw else booked
            )
            cents = _amount(get("amount") or "", mapping.decimal_comma)
        except ValueError as exc:
            raise StatementError(
                f"{source_name}: line {lineno}: {col.get('amount')!r}: {exc}"
            ) from None
        if mapping.sign == "debit_column" and mapping.direction_column:
            if (rec.get(mapping.direction_column) or "").strip() in mapping.debit_values:
                cents = -abs(cents)
            else:
                cents = abs(cents)
        rows.append(
            {
                "payment_id": f"{file_hash}-0-{i}",
                "booking_date": booked,
                "value_date": value_date,
                "amount_cents": cents,
                "currency": (get("currency") or "EUR").upper(),
                "counterparty_iban": (get("counterparty_iban") or "").replace(" ", "") or None,
                "counterparty_name": get("counterparty_name"),
                "remittance": get("remittance"),
                "structured_reference": None,
                "end_to_end_id": get("end_to_end_id"),
                "bank_reference": get("bank_reference"),
                "reversal": False,
                "return_reason": None,
            }
        )
    return pd.DataFrame(rows, columns=list(PAYMENT_COLUMNS))


__all__ = ["CsvMapping", "parse_csv_payments"]
