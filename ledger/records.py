"""Canonical records.

Bulk data moves as pandas DataFrames with the column sets below (money in integer
cents, dates as ``datetime.date``); single messages crossing a port are dataclasses.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: a debtor as every source maps it
DEBTOR_COLUMNS = (
    "debtor_id",
    "name",
    "email",
    "phone",
    "iban",
    "street",
    "postcode",
    "city",
    "language",
    "source_version",
)

#: an invoice (open item or settled history) as every source maps it
INVOICE_COLUMNS = (
    "invoice_id",
    "debtor_id",
    "invoice_date",
    "due_date",
    "amount_cents",  # the principal invoiced
    "open_cents",  # still owed, including open costs and interest
    "costs_cents",  # the part of open_cents that is collection costs (0 when not given)
    "interest_cents",  # the part of open_cents that is interest (0 when not given)
    "currency",
    "payment_reference",
    "paid_date",
    "prior_reminders",  # reminders the creditor's own system sent before vangnet
    "source_version",
)

#: a payment the creditor's own system has booked (ERP/CRM side, not a bank line)
ERP_PAYMENT_COLUMNS = (
    "payment_id",
    "debtor_id",
    "invoice_id",
    "paid_on",
    "amount_cents",
    "currency",
    "method",
    "source_version",
)

#: a booked bank statement entry (or one transaction of a batch entry)
PAYMENT_COLUMNS = (
    "payment_id",
    "booking_date",
    "value_date",
    "amount_cents",
    "currency",
    "counterparty_iban",
    "counterparty_name",
    "remittance",
    "structured_reference",
    "end_to_end_id",
    "bank_reference",
    "reversal",
    "return_reason",
)


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message for one debtor on one channel."""

    message_id: str
    creditor_id: str
    debtor_id: str
    channel: str
    step: str
    to: str  # address, phone number or postal block, as the channel needs
    subject: str
    body_text: str
    body_html: str | None = None
    send_after: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """What a channel says about one message it was handed."""

    message_id: str
    status: str  # sent | failed | unknown
    provider_id: str | None = None
    error: str | None = None
    retriable: bool = False
    #: facts to keep with the contact, e.g. a letter's expected delivery date
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class WriteBack:
    """One change to write into a creditor's own system."""

    change_id: str
    entity: str
    record_id: str
    values: dict[str, Any]
    expected_version: str | None = None


@dataclass(frozen=True)
class WriteResult:
    change_id: str
    status: str  # applied | conflict | failed
    error: str | None = None


def to_json_value(v: Any) -> Any:
    """A value as JSON can hold it: dates as ISO strings, numpy scalars as Python,
    missing values (None, NaN, pandas NA) as None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):
        return to_json_value(v.item())
    return v


def json_column(col: pd.Series) -> list[Any]:
    """One column's values as ``to_json_value`` gives them, converted a column at a
    time: numbers and booleans in one go, text passed through, the rest per cell."""
    kind = col.dtype.kind
    if kind in "iub":
        if isinstance(col.dtype, pd.api.extensions.ExtensionDtype):  # Int64, boolean
            return list(col.to_numpy(dtype=object, na_value=None))
        return col.tolist()  # numpy ints and bools: Python ones, never missing
    if kind == "f" and not isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
        return [None if x != x else x for x in col.tolist()]  # NaN is not equal to itself
    return [x if x.__class__ is str else to_json_value(x) for x in col.tolist()]


def tuples(df: pd.DataFrame) -> Iterator[Any]:
    """``df.itertuples(index=False)``, read a column at a time. pandas 3 iterates a
    ``str`` column element by element through ``__getitem__``, 30-70x slower than its
    ``tolist()``; ``itertuples`` does that for every column. The values are what
    ``tolist()`` gives: Python scalars (``int``, not ``numpy.int64``), NaN/NA/NaT as they
    are."""
    row = collections.namedtuple("Row", [str(c) for c in df.columns], rename=True)  # type: ignore[misc]
    if not len(df.columns):
        return iter([row()] * len(df))
    return map(row._make, zip(*(df.iloc[:, k].tolist() for k in range(df.shape[1])), strict=True))


def ledger_column(col: pd.Series) -> list[Any]:
    """One column's values as the ledger's columns take them: ``json_column``'s, but
    dates and timestamps kept as they are (SQLAlchemy binds them), not ISO text."""
    if col.dtype.kind in "iubf":
        return json_column(col)
    return [x if x.__class__ is str or x is None else _ledger_value(x) for x in col.tolist()]


def _ledger_value(v: Any) -> Any:
    if isinstance(v, dt.date) and v is not pd.NaT:  # datetime and Timestamp too
        return v
    return to_json_value(v)


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of JSON-able values: the same as ``to_json_value`` on
    every cell of ``df.to_dict("records")``, at a fraction of its cost on a large frame
    (the staging and promote paths move a day's records through here)."""
    cols = [str(c) for c in df.columns]
    values = [json_column(df.iloc[:, i]) for i in range(len(cols))]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]
