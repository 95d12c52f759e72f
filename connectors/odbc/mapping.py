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
        return _debtors_vectorised(records, columns)
    if entity == "invoices":
        return _invoices_vectorised(records, columns)
    if entity == "payments":
        return _payments(records, columns)
    raise ValueError(f"unknown entity {entity!r}")


def _get(rec: Mapping[str, Any], columns: Mapping[str, str], name: str) -> Any:
    col = columns.get(name)
    return rec.get(col) if col else None


def _debtors_rows(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
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


def _invoices_rows(
    records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
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


# ------------------------------------------------------------------ a page at a time
# The same conversions as the row functions above, on whole columns: the common shapes
# (plain decimals, ISO dates, integers) in bulk, every other value through the row
# functions, so results and error texts are the same (a property test holds them equal).
_PLAIN_AMOUNT = r"-?\d{1,15}(?:\.\d{1,2})?"
_ISO_DATE = r"\d{4}-\d{2}-\d{2}.*"


def _raw(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str], name: str) -> pd.Series:
    col = columns.get(name)
    if not col:
        return pd.Series([None] * len(records), dtype=object)
    return pd.Series([rec.get(col) for rec in records], dtype=object)


def _text_col(raw: pd.Series) -> pd.Series:
    """``_text`` on a column: None for missing or blank, else the stripped text."""
    present = raw.notna()
    out = pd.Series([None] * len(raw), dtype=object)
    if present.any():
        st = raw[present].astype(str).str.strip()
        out[present] = st.where(st != "", None)
    return out


def _frame(cols: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    """Columns as plain lists (None for missing), so pandas infers the same dtypes as
    from row dicts."""
    plain = {
        k: (v.astype(object).where(v.notna(), None).tolist() if isinstance(v, pd.Series) else v)
        for k, v in cols.items()
    }
    return pd.DataFrame(plain, columns=columns)


class _Errors:
    """Per row, the readable reasons a value was not taken (in field order)."""

    def __init__(self, n: int) -> None:
        self.by_row: dict[int, list[str]] = {}
        self.n = n

    def add(self, i: int, text: str) -> None:
        self.by_row.setdefault(i, []).append(text)

    def column(self) -> list[str | None]:
        out: list[str | None] = [None] * self.n
        for i, errs in self.by_row.items():
            out[i] = "; ".join(errs)
        return out


def _convert_col(
    raw: pd.Series,
    name: str,
    errors: _Errors,
    required: bool,
    fast: Any,
    slow: Any,
) -> pd.Series:
    """``fast`` converts the common shapes of a column (NaN/NaT where it cannot); the
    rest of the non-blank values go through ``slow`` one by one, as the rows would."""
    blank = raw.map(_blank).to_numpy(dtype=bool)
    out = pd.Series([None] * len(raw), dtype=object)
    if required:
        for i in blank.nonzero()[0]:
            errors.add(int(i), f"{name}: missing")
    todo = raw[~blank]
    if todo.empty:
        return out
    done = fast(todo)
    ok = done.notna()
    out[ok[ok].index] = done[ok]
    for i in ok[~ok].index:
        try:
            out[i] = slow(raw[i])
        except ValueError as exc:
            errors.add(int(i), f"{name}: {exc}")
    return out


def _fast_cents(raw: pd.Series) -> pd.Series:
    st = raw.map(
        lambda v: (
            v
            if isinstance(v, str)
            else repr(v)
            if isinstance(v, float)
            else (str(v) if not isinstance(v, bool) else "")
        )
    ).str.strip()
    plain = st.str.fullmatch(_PLAIN_AMOUNT)
    out = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    if not plain.any():
        return out
    p = st[plain]
    neg = p.str.startswith("-")
    parts = p.str.lstrip("-").str.split(".", n=1, expand=True)
    whole = parts[0].astype("int64")
    frac = (
        parts[1].fillna("").str.ljust(2, "0").astype("int64")
        if parts.shape[1] > 1
        else pd.Series(0, index=p.index)
    )
    cents = (whole * 100 + frac) * neg.map({True: -1, False: 1})
    out[p.index] = cents.astype(object)
    return out


def _fast_date(raw: pd.Series) -> pd.Series:
    out = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    is_date = raw.map(lambda v: isinstance(v, dt.date))
    for i in is_date[is_date].index:
        v = raw[i]
        out[i] = v.date() if isinstance(v, dt.datetime) else v
    texts = raw[~is_date]
    if texts.empty:
        return out
    st = texts.astype(str).str.strip()
    iso = st[st.str.fullmatch(_ISO_DATE)].str[:10]
    parsed = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
    good = parsed.notna()
    out[good[good].index] = parsed[good].dt.date
    return out


def _fast_int(raw: pd.Series) -> pd.Series:
    out = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    is_int = raw.map(lambda v: isinstance(v, int) and not isinstance(v, bool))
    out[is_int[is_int].index] = raw[is_int]
    st = raw[~is_int & raw.map(lambda v: isinstance(v, str))].str.strip()
    digits = st[st.str.fullmatch(r"-?\d{1,18}")]
    out[digits.index] = digits.astype("int64").astype(object)
    return out


def _invoices_vectorised(
    records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    n = len(records)
    errors = _Errors(n)

    def conv(name: str, fast: Any, slow: Any, required: bool = True) -> pd.Series:
        return _convert_col(_raw(records, columns, name), name, errors, required, fast, slow)

    amount = conv("amount_cents", _fast_cents, parse_cents)
    open_ = conv("open_cents", _fast_cents, parse_cents, required=False)
    invoice_date = conv("invoice_date", _fast_date, parse_date)
    due_date = conv("due_date", _fast_date, parse_date)
    costs = conv("costs_cents", _fast_cents, parse_cents, required=False)
    interest = conv("interest_cents", _fast_cents, parse_cents, required=False)
    paid = conv("paid_date", _fast_date, parse_date, required=False)
    reminders = conv("prior_reminders", _fast_int, int, required=False)
    ref = _text_col(_raw(records, columns, "payment_reference"))
    currency = _text_col(_raw(records, columns, "currency")).fillna("EUR").str.upper()
    df = _frame(
        {
            "invoice_id": _text_col(_raw(records, columns, "invoice_id")),
            "debtor_id": _text_col(_raw(records, columns, "debtor_id")),
            "invoice_date": invoice_date,
            "due_date": due_date,
            "amount_cents": amount,
            "open_cents": open_.where(open_.notna() | amount.isna(), amount),
            "costs_cents": costs.where(costs.astype(bool), 0),
            "interest_cents": interest.where(interest.astype(bool), 0),
            "currency": currency,
            "payment_reference": ref.where(ref.isna(), ref.str.replace(" ", "", regex=False)),
            "paid_date": paid,
            "prior_reminders": reminders.where(reminders.astype(bool), 0),
            "source_version": _text_col(_raw(records, columns, "source_version")),
            "_errors": errors.column(),
        },
        [*INVOICE_COLUMNS, "_errors"],
    )
    for col in ("amount_cents", "open_cents", "costs_cents", "interest_cents"):
        df[col] = df[col].astype("Int64")
    return df


def _debtors_vectorised(
    records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]
) -> pd.DataFrame:
    def text(name: str) -> pd.Series:
        return _text_col(_raw(records, columns, name))

    email = text("email")
    phone = _raw(records, columns, "phone")
    phone_blank = phone.map(_blank)
    # one parse per distinct number (libphonenumber is the slow part)
    phone_norm = phone.where(phone_blank, None)
    distinct = {v: normal_phone(v) for v in phone[~phone_blank].unique()}
    phone_norm[~phone_blank] = phone[~phone_blank].map(distinct)
    iban = text("iban")
    postcode = text("postcode")
    compact = postcode.where(
        postcode.isna(), postcode.str.replace(" ", "", regex=False).str.upper()
    )
    six = compact.str.len() == 6
    postcode = postcode.where(~six.fillna(False), compact.str[:4] + " " + compact.str[4:])
    language = text("language").fillna("nl").str.lower().str[:2]
    return _frame(
        {
            "debtor_id": text("debtor_id"),
            "name": text("name"),
            "email": email.where(email.isna(), email.str.lower()),
            "phone": phone_norm.where(~phone_blank, None),
            "iban": iban.where(iban.isna(), iban.str.replace(" ", "", regex=False).str.upper()),
            "street": text("street"),
            "postcode": postcode,
            "city": text("city"),
            "language": language,
            "source_version": text("source_version"),
            "_errors": [None] * len(records),
        },
        [*DEBTOR_COLUMNS, "_errors"],
    )
