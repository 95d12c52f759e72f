"""Source rows -> canonical DataFrames. Nothing is dropped: a value that cannot be read
becomes null and the row carries the reason in ``_errors`` for the validation stage."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from ledger.records import DEBTOR_COLUMNS, ERP_PAYMENT_COLUMNS, INVOICE_COLUMNS
from transforms.phones import normal_phone


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


# the plain shapes of an amount ("1234.56", "-12", "7.5"): their cents need no Decimal
_PLAIN_AMOUNT = re.compile(r"(-?)([0-9]{1,15})(?:\.([0-9]{1,2}))?")


def parse_cents(v: Any) -> int:
    """Money to integer cents, half-up. Accepts Decimal, int, '1234.56' and '1.234,56'."""
    if type(v) is str:
        m = _PLAIN_AMOUNT.fullmatch(v)
        if m is not None:
            sign, whole, frac = m.groups()
            cents = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
            return -cents if sign else cents
    return _cents_by_decimal(v)


def _cents_by_decimal(v: Any) -> int:
    """``parse_cents`` for every shape: Dutch decimal commas, euro signs, spaces, floats."""
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


def to_canonical(
    entity: str, records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    """Records (one mapping per source row) to the canonical frame of ``entity``."""
    wanted = {c for c in columns.values() if c}
    source = {c: [rec.get(c) for rec in records] for c in wanted}
    return columns_to_canonical(entity, source, len(records), columns)


def columns_to_canonical(
    entity: str, source: Mapping[str, Sequence[Any]], n: int, columns: Mapping[str, str]
) -> pd.DataFrame:
    """``to_canonical`` of ``n`` source rows given a column at a time (source column
    name -> its values), as a cursor's ``fetchmany`` transposes them."""
    page = _Page(source, n, columns)
    if entity == "debtors":
        return _debtors(page)
    if entity == "invoices":
        return _invoices(page)
    if entity == "payments":
        return _payments(page)
    raise ValueError(f"unknown entity {entity!r}")


_BLANK = "blank"  # the marker of a blank value in ``_Page.convert``'s memo


def _convert_one(name: str, fn: Any, raw: Any) -> tuple[Any, str | None]:
    if raw is None or (type(raw) is str and not raw.strip()):
        return None, _BLANK
    try:
        return fn(raw), None
    except ValueError as exc:
        return None, f"{name}: {exc}"


class _Page:
    """A page of source rows read a column at a time, with each row's errors.

    An export repeats its values (the same dates, amounts, currencies on many rows):
    ``convert`` reads each distinct value of a column once.
    """

    def __init__(self, source: Mapping[str, Sequence[Any]], n: int, columns: Mapping[str, str]):
        self.source, self.n, self.columns = source, n, columns
        self.errors: dict[int, list[str]] = {}  # row -> its errors, in the order found

    def raw(self, name: str) -> Sequence[Any]:
        col = self.columns.get(name)
        values = self.source.get(col) if col else None
        return values if values is not None else [None] * self.n

    def text(self, name: str) -> list[str | None]:
        return [
            (v.strip() or None) if type(v) is str else (None if v is None else str(v).strip())
            for v in self.raw(name)
        ]

    def convert(self, name: str, fn: Any, required: bool = True) -> list[Any]:
        """``fn`` of each value; a blank one is None (an error when ``required``), one
        ``fn`` refuses is None with the reason in that row's errors.

        A column of one kind of value (and gaps), as an export gives it, is read a
        distinct value at a time, and its rows looked up in C (``map``): the rows are
        walked in Python only when some value gave an error (a million invoices mapped
        in pages of 5,000: 2.9-3.1 s a row at a time, 2.4 s so). Values of mixed kinds,
        or unhashable ones, go row by row: 1, 1.0 and True are equal keys."""
        values = self.raw(name)
        kinds = set(map(type, values))
        kinds.discard(type(None))
        try:
            distinct = set(values) if len(kinds) <= 1 else None
        except TypeError:  # an unhashable value
            distinct = None
        if distinct is None:
            return self._convert_by_row(name, fn, required, values)
        memo = {raw: _convert_one(name, fn, raw) for raw in distinct}
        missing = f"{name}: missing"
        said = {
            raw: missing if err is _BLANK else err
            for raw, (_value, err) in memo.items()
            if err is not None and (err is not _BLANK or required)
        }
        if said:
            errors = self.errors
            for row, raw in enumerate(values):
                err = said.get(raw)
                if err is not None:
                    errors.setdefault(row, []).append(err)
        read = {raw: value for raw, (value, _err) in memo.items()}
        return list(map(read.__getitem__, values))

    def _convert_by_row(
        self, name: str, fn: Any, required: bool, values: Sequence[Any]
    ) -> list[Any]:
        out: list[Any] = []
        memo: dict[tuple[type, Any], tuple[Any, str | None]] = {}
        errors = self.errors
        missing = f"{name}: missing"
        for row, raw in enumerate(values):
            key = (type(raw), raw)  # 1, 1.0 and True are equal keys; their types are not
            try:
                value, err = memo[key]
            except KeyError:
                value, err = memo[key] = _convert_one(name, fn, raw)
            except TypeError:  # an unhashable value: read on its own
                value, err = _convert_one(name, fn, raw)
            if err is not None:
                if err is not _BLANK:
                    errors.setdefault(row, []).append(err)
                elif required:
                    errors.setdefault(row, []).append(missing)
            out.append(value)
        return out

    def error_column(self) -> list[str | None]:
        column: list[str | None] = [None] * self.n
        for row, found in self.errors.items():
            column[row] = "; ".join(found)
        return column


def _frame(data: dict[str, list[Any]], columns: Sequence[str], n: int) -> pd.DataFrame:
    # a column of all None stays object (as pd.DataFrame(rows) leaves it)
    return pd.DataFrame(data, columns=list(columns), index=pd.RangeIndex(n))


def _cents(values: list[Any]) -> Any:
    """Cents as a nullable integer column, exactly: a column of ints with gaps made by
    the frame first is float, which rounds an amount past 2**53 cents."""
    return pd.array(values, dtype="Int64")


def _debtors(page: _Page) -> pd.DataFrame:
    postcodes = []
    for pc in page.text("postcode"):
        if pc:
            compact = pc.replace(" ", "").upper()
            pc = f"{compact[:4]} {compact[4:]}" if len(compact) == 6 else pc
        postcodes.append(pc)
    data: dict[str, list[Any]] = {
        "debtor_id": page.text("debtor_id"),
        "name": page.text("name"),
        "email": [e.lower() if e else None for e in page.text("email")],
        "phone": [None if _blank(p) else normal_phone(p) for p in page.raw("phone")],
        "iban": [i.replace(" ", "").upper() if i else None for i in page.text("iban")],
        "street": page.text("street"),
        "postcode": postcodes,
        "city": page.text("city"),
        "language": [(lang or "nl").lower()[:2] for lang in page.text("language")],
        "source_version": page.text("source_version"),
        "_errors": page.error_column(),
    }
    return _frame(data, [*DEBTOR_COLUMNS, "_errors"], page.n)


def _invoices(page: _Page) -> pd.DataFrame:
    # converted in the order a row's errors are listed
    amount = page.convert("amount_cents", parse_cents)
    open_ = page.convert("open_cents", parse_cents, required=False)
    invoice_date = page.convert("invoice_date", parse_date)
    due_date = page.convert("due_date", parse_date)
    costs = page.convert("costs_cents", parse_cents, required=False)
    interest = page.convert("interest_cents", parse_cents, required=False)
    paid_date = page.convert("paid_date", parse_date, required=False)
    prior = page.convert("prior_reminders", int, required=False)
    data: dict[str, list[Any]] = {
        "invoice_id": page.text("invoice_id"),
        "debtor_id": page.text("debtor_id"),
        "invoice_date": invoice_date,
        "due_date": due_date,
        "amount_cents": amount,
        "open_cents": [
            a if o is None and a is not None else o for a, o in zip(amount, open_, strict=True)
        ],
        "costs_cents": [c or 0 for c in costs],
        "interest_cents": [i or 0 for i in interest],
        "currency": [(c or "EUR").upper() for c in page.text("currency")],
        "payment_reference": [
            r.replace(" ", "") if r else None for r in page.text("payment_reference")
        ],
        "paid_date": paid_date,
        "prior_reminders": [p or 0 for p in prior],
        "source_version": page.text("source_version"),
        "_errors": page.error_column(),
    }
    for col in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
        data[col] = _cents(data[col])
    return _frame(data, [*INVOICE_COLUMNS, "_errors"], page.n)


def _payments(page: _Page) -> pd.DataFrame:
    paid_on = page.convert("paid_on", parse_date)
    amount = page.convert("amount_cents", parse_cents)
    data: dict[str, list[Any]] = {
        "payment_id": page.text("payment_id"),
        "debtor_id": page.text("debtor_id"),
        "invoice_id": page.text("invoice_id"),
        "paid_on": paid_on,
        "amount_cents": amount,
        "currency": [(c or "EUR").upper() for c in page.text("currency")],
        "method": page.text("method"),
        "source_version": page.text("source_version"),
        "_errors": page.error_column(),
    }
    data["amount_cents"] = _cents(data["amount_cents"])
    return _frame(data, [*ERP_PAYMENT_COLUMNS, "_errors"], page.n)
