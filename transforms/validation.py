"""Validation of incoming records with Great Expectations (GX Core 1.x).

Each entity has a suite of named rules. GX evaluates them on the whole batch at once;
the failing rows per rule come back in ``unexpected_index_list`` (their positions in the
batch), so every failing record is quarantined with *every* rule it broke and its
offending value (masked where personal), while the rest of the batch goes on. Checks
GX has no expectation for (IBAN check digits, E.164 numbers, payment reference check
digits) are computed as boolean columns by the ``derive_*`` functions and then expected
true by the suite, so GX stays the single place that decides.

One GX context per run (``Validator``), never per batch.
"""

from __future__ import annotations

import functools
import logging
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from schwifty import IBAN

from ledger.records import to_json_value
from transforms.masking import mask_value
from transforms.phones import valid_phone
from transforms.references import is_valid_reference, valid_references

logging.getLogger("great_expectations").setLevel(logging.ERROR)

EMAIL_RE = r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$"
POSTCODE_RE = r"^[1-9][0-9]{3} ?[A-Z]{2}$"
# a replacement or control character (text mangled on its way out of the ERP), or a bidi
# override (text made to read otherwise than it is written)
MANGLED_RE = "[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\u202a-\u202e\u2066-\u2069]"
MAX_PLAUSIBLE_CENTS = 10_000_000  # EUR 100,000 for one consumer invoice
# the ledger's column widths: a longer value is quarantined, never cut or crashed on
FIELD_LIMITS: dict[str, dict[str, int]] = {
    "debtors": {
        "debtor_id": 64,
        "name": 200,
        "email": 254,
        "phone": 32,
        "iban": 34,
        "street": 200,
        "postcode": 7,
        "city": 100,
        "language": 5,
        "source_version": 64,
    },
    "statement_lines": {
        "payment_id": 96,
        "counterparty_iban": 34,
        "counterparty_name": 140,
        "structured_reference": 35,
        "end_to_end_id": 64,
        "bank_reference": 64,
        "currency": 3,
        "return_reason": 8,
    },
    "invoices": {
        "invoice_id": 64,
        "debtor_id": 64,
        "currency": 3,
        "payment_reference": 35,
        "source_version": 64,
    },
}


def fields_fit(df: pd.DataFrame, entity: str) -> pd.Series:
    """True where every bounded text field fits its ledger column."""
    ok = pd.Series(True, index=df.index)
    for col, limit in FIELD_LIMITS[entity].items():
        if col in df:
            ok &= ~(df[col].astype("string").str.len() > limit).fillna(False).astype(bool)
    return ok


@dataclass(frozen=True)
class Rule:
    name: str  # stable id shown to operations, e.g. "invoice.amount_positive"
    column: str  # the column whose value is shown in quarantine
    build: Callable[[], Any]  # returns a GX expectation
    explain: str
    #: False: a failure is counted and reported (``warnings``) but does not hold the record
    blocking: bool = True


@dataclass
class ValidationOutcome:
    entity: str
    checked: int
    valid: pd.DataFrame
    rejected: pd.DataFrame  # the rejected rows as read
    failures: dict[str, list[dict[str, Any]]]  # record key -> [{rule, column, value}]
    per_rule: dict[str, int] = field(default_factory=dict)
    rejected_keys: list[str] = field(default_factory=list)  # the key of each rejected row, in order
    batch_error: str | None = None
    #: non-blocking rules: row position -> the rules it broke (the row itself went on)
    warnings: dict[int, list[str]] = field(default_factory=dict)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value == ""


def _valid_iban(value: Any) -> bool:
    if _missing(value):
        return True  # optional
    return _iban_ok(str(value))


#: a Dutch IBAN as written clean: NL, two check digits, four letters of the bank, ten
#: digits (ASCII only: ``\d`` without re.ASCII takes any script's digits)
_NL_IBAN = re.compile(r"NL(\d\d)([A-Z]{4})(\d{10})", re.ASCII)
_LETTER_VALUE = {c: str(i) for i, c in enumerate(string.ascii_uppercase, start=10)}


def _nl_iban_ok(check: str, bank: str, account: str) -> bool:
    """ISO 7064 mod 97-10 as schwifty computes it: the check digits are ``98 - (BBAN
    and country as a number x 100) mod 97``, so 00, 01 and 99 never are ("NL" is 2321)."""
    n = int(_bank_digits(bank) + account + "232100")
    return 98 - n % 97 == int(check)


@functools.lru_cache(maxsize=4096)
def _bank_digits(bank: str) -> str:
    """A bank code's letters as ISO 7064 numbers them (A = 10 ... Z = 35), once a bank:
    a day's IBANs come from a few dozen banks (bounded: an export of made-up codes
    would otherwise grow it)."""
    return "".join(map(_LETTER_VALUE.__getitem__, bank))


@functools.lru_cache(maxsize=1 << 18)
def _iban_ok(text: str) -> bool:
    """schwifty's reading (length, BBAN structure, check digits), kept per text: the
    statement lines' counterparties are mostly the debtors validated earlier that day,
    and schwifty takes 10-25 us an IBAN. A Dutch IBAN as written clean (nearly every
    one) is read here in 2.4 us against schwifty's 10.1 (50,000 IBANs), to the same
    verdict: NL's BBAN is four letters and ten digits, and schwifty checks no bank
    registry or national checksum by default."""
    m = _NL_IBAN.fullmatch(text)
    if m is not None:
        return _nl_iban_ok(*m.groups())
    try:
        IBAN(text)
        return True
    except ValueError:
        return False


def _valid_phone(value: Any) -> bool:
    return True if _missing(value) else valid_phone(value)


def _valid_ref(value: Any) -> bool:
    if _missing(value):
        return True
    return is_valid_reference(str(value))


def _matches(series: pd.Series, pattern: str) -> pd.Series:
    """True where the value matches (a missing value passes: presence is its own rule)."""
    text = series.astype("string")
    return (text.isna() | text.str.fullmatch(pattern).fillna(False)).astype(bool)


def derive_debtor_checks(df: pd.DataFrame) -> pd.DataFrame:
    """Booleans for every check on a personal field, so the frame GX sees (and the Data
    Docs it writes) holds no name, address, e-mail, phone number or IBAN."""
    out = df.copy()
    out["iban_valid"] = [_valid_iban(v) for v in out["iban"]]
    out["phone_valid"] = [_valid_phone(v) for v in out["phone"]]
    has = lambda c: out[c].notna() & (out[c].astype("string").str.len() > 0)  # noqa: E731
    out["reachable"] = has("email") | has("phone") | (has("street") & has("postcode"))
    out["name_present"] = has("name")
    names = out["name"].astype("string")
    out["name_clean"] = ~names.str.contains(MANGLED_RE, regex=True).fillna(False).astype(bool)
    out["email_ok"] = _matches(out["email"], EMAIL_RE)
    out["postcode_ok"] = _matches(out["postcode"], POSTCODE_RE)
    out["fields_fit"] = fields_fit(out, "debtors")
    out["parse_ok"] = out["_errors"].isna() if "_errors" in out else True
    return out


def _cents(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(0, index=df.index, dtype="Int64")
    return pd.to_numeric(df[col], errors="coerce").fillna(0)


def derive_invoice_checks(
    df: pd.DataFrame, known_debtors: Iterable[str], max_due_days: int = 400
) -> pd.DataFrame:
    out = df.copy()
    inv = pd.to_datetime(out["invoice_date"], errors="coerce")
    due = pd.to_datetime(out["due_date"], errors="coerce")
    far = (due - inv).dt.days > max_due_days
    out["due_not_absurd"] = ~far.fillna(False).astype(bool)
    out["reference_valid"] = valid_references(out["payment_reference"].tolist(), _valid_ref)
    known = set(known_debtors)
    out["debtor_known"] = out["debtor_id"].isin(known)
    costs = _cents(out, "costs_cents")
    interest = _cents(out, "interest_cents")
    open_ = out["open_cents"].fillna(0)
    # open = what is left of the principal plus open costs and interest
    out["open_within_amount"] = open_ - costs - interest <= out["amount_cents"].fillna(0)
    out["components_within_open"] = (costs >= 0) & (interest >= 0) & (costs + interest <= open_)
    out["fields_fit"] = fields_fit(out, "invoices")
    out["parse_ok"] = out["_errors"].isna() if "_errors" in out else True
    return out


def derive_payment_checks(df: pd.DataFrame, known_debtors: Iterable[str]) -> pd.DataFrame:
    out = df.copy()
    out["debtor_known"] = out["debtor_id"].isin(set(known_debtors))
    out["parse_ok"] = out["_errors"].isna() if "_errors" in out else True
    return out


def payment_rules(currencies: tuple[str, ...] = ("EUR",)) -> list[Rule]:
    E = _gx().expectations
    cur = list(currencies)
    return [
        Rule(
            "payment.parseable",
            "_errors",
            lambda: E.ExpectColumnValuesToBeInSet(column="parse_ok", value_set=[True]),
            "every field could be read",
        ),
        Rule(
            "payment.id_present",
            "payment_id",
            lambda: E.ExpectColumnValuesToNotBeNull(column="payment_id"),
            "a payment id is present",
        ),
        Rule(
            "payment.id_unique",
            "payment_id",
            lambda: E.ExpectColumnValuesToBeUnique(column="payment_id"),
            "payment ids are unique in the batch",
        ),
        Rule(
            "payment.amount_plausible",
            "amount_cents",
            lambda: E.ExpectColumnValuesToBeBetween(
                column="amount_cents", min_value=-MAX_PLAUSIBLE_CENTS, max_value=MAX_PLAUSIBLE_CENTS
            ),
            "amount within +/- EUR 100,000",
        ),
        Rule(
            "payment.amount_not_zero",
            "amount_cents",
            lambda: E.ExpectColumnValuesToNotBeInSet(column="amount_cents", value_set=[0]),
            "a payment of zero is no payment",
        ),
        Rule(
            "payment.currency",
            "currency",
            lambda: E.ExpectColumnValuesToBeInSet(column="currency", value_set=cur),
            f"currency in {cur}",
        ),
        Rule(
            "payment.debtor_known",
            "debtor_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="debtor_known", value_set=[True]),
            "the payment's debtor is known",
        ),
    ]


MAX_STATEMENT_CENTS = 1_000_000_000  # EUR 10 million: a bank line beyond is a broken file


def derive_statement_checks(df: pd.DataFrame, today: Any) -> pd.DataFrame:
    """Booleans for the checks on parsed bank lines (no personal value reaches GX)."""
    out = df.copy()
    booked = pd.to_datetime(out["booking_date"], errors="coerce")
    now = pd.Timestamp(today)
    out["booking_date_present"] = booked.notna()
    out["booking_date_plausible"] = (
        booked.isna()
        | ((booked <= now + pd.Timedelta(days=7)) & (booked >= now - pd.Timedelta(days=800)))
    ).astype(bool)
    out["counterparty_iban_valid"] = [
        _valid_iban(v) or str(v).strip().isdigit() for v in out["counterparty_iban"]
    ]  # an old Dutch account number (9-10 digits) is not an IBAN, and not wrong
    out["structured_reference_valid"] = valid_references(
        out["structured_reference"].tolist(), _valid_ref
    )
    out["amount_cents"] = pd.to_numeric(out["amount_cents"], errors="coerce").astype("Int64")
    out["fields_fit"] = fields_fit(out, "statement_lines")
    return out


def statement_rules(currencies: tuple[str, ...] = ("EUR",)) -> list[Rule]:
    E = _gx().expectations
    cur = list(currencies)
    return [
        Rule(
            "statement.fields_fit",
            "payment_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="fields_fit", value_set=[True]),
            "no field longer than the ledger keeps (name 140, references 35/64, IBAN 34)",
        ),
        Rule(
            "statement.booking_date",
            "booking_date",
            lambda: E.ExpectColumnValuesToBeInSet(column="booking_date_present", value_set=[True]),
            "a booking date is present",
        ),
        Rule(
            "statement.booking_date_plausible",
            "booking_date",
            lambda: E.ExpectColumnValuesToBeInSet(
                column="booking_date_plausible", value_set=[True]
            ),
            "booked at most 7 days ahead and not more than 800 days ago",
        ),
        Rule(
            "statement.amount_not_zero",
            "amount_cents",
            lambda: E.ExpectColumnValuesToNotBeInSet(column="amount_cents", value_set=[0]),
            "an entry of zero is no payment",
        ),
        Rule(
            "statement.amount_plausible",
            "amount_cents",
            lambda: E.ExpectColumnValuesToBeBetween(
                column="amount_cents", min_value=-MAX_STATEMENT_CENTS, max_value=MAX_STATEMENT_CENTS
            ),
            "amount within +/- EUR 10 million",
        ),
        Rule(
            "statement.currency",
            "currency",
            lambda: E.ExpectColumnValuesToBeInSet(column="currency", value_set=cur),
            f"currency in {cur}",
        ),
        Rule(
            "statement.counterparty_iban_valid",
            "counterparty_iban",
            lambda: E.ExpectColumnValuesToBeInSet(
                column="counterparty_iban_valid", value_set=[True]
            ),
            "the payer's IBAN has valid check digits (pre-IBAN account numbers pass);"
            " reported, never holding back money that came in",
            blocking=False,
        ),
        Rule(
            "statement.reference_check_digit",
            "structured_reference",
            lambda: E.ExpectColumnValuesToBeInSet(
                column="structured_reference_valid", value_set=[True]
            ),
            "a structured reference has valid check digits; reported, and the line is matched"
            " on its other evidence (the reference is read as text)",
            blocking=False,
        ),
        Rule(
            "statement.id_unique",
            "payment_id",
            lambda: E.ExpectColumnValuesToBeUnique(column="payment_id"),
            "entry ids are unique in the file",
        ),
    ]


NEEDS_CLIENT = frozenset(
    {
        "kennisgeving",
        "kennisgeving_publiek",
        "saldoverzoek",
        "betaalvoorstel",
        "heroverweging",
        "schuldregeling_akkoord",
        "schuldregeling_beeindigd",
        "bewindvoering",
        "wsnp",
        "moratorium",
    }
)


def _bsn_ok(v: Any) -> bool:
    """The BSN eleven test (elfproef: weights 9..2 and -1)."""
    if _missing(v):
        return True
    d = str(v).strip()
    if not d.isdigit() or len(d) not in (8, 9):
        return False
    d = d.zfill(9)
    total = sum(int(c) * w for c, w in zip(d[:8], range(9, 1, -1), strict=True)) - int(d[8])
    return total % 11 == 0 and d != "000000000"


def derive_message_checks(df: pd.DataFrame, today: Any) -> pd.DataFrame:
    """Booleans for Schuldenknooppunt messages (``InMessage`` fields as columns)."""
    out = df.copy()
    sent = pd.to_datetime(out["sent_on"], errors="coerce")
    out["date_plausible"] = (
        sent.notna() & (sent <= pd.Timestamp(today) + pd.Timedelta(days=1))
    ).astype(bool)
    has = lambda c: out[c].notna() & (out[c].astype("string").str.strip().str.len() > 0)  # noqa: E731
    identified = has("client_number") | (has("postcode") & has("house_number"))
    out["client_identified"] = (identified | ~out["type"].isin(NEEDS_CLIENT)).astype(bool)
    pct = pd.to_numeric(out["percentage"], errors="coerce")
    term = pd.to_numeric(out["term_months"], errors="coerce")
    out["proposal_sane"] = (
        (pct.isna() | pct.between(0, 100)) & (term.isna() | term.between(1, 120))
    ).astype(bool)
    out["bsn_valid"] = [_bsn_ok(v) for v in out["bsn"]]
    return out


def message_rules() -> list[Rule]:
    E = _gx().expectations
    return [
        Rule(
            "skn.id_unique",
            "message_id",
            lambda: E.ExpectColumnValuesToBeUnique(column="message_id"),
            "message ids are unique in a fetch",
        ),
        Rule(
            "skn.date_plausible",
            "sent_on",
            lambda: E.ExpectColumnValuesToBeInSet(column="date_plausible", value_set=[True]),
            "a message date, not in the future",
        ),
        Rule(
            "skn.client_identified",
            "client_number",
            lambda: E.ExpectColumnValuesToBeInSet(column="client_identified", value_set=[True]),
            "a client number, or postcode and house number, where the message is about a client",
        ),
        Rule(
            "skn.proposal_sane",
            "percentage",
            lambda: E.ExpectColumnValuesToBeInSet(column="proposal_sane", value_set=[True]),
            "a proposal's percentage 0-100 and term 1-120 months",
        ),
        Rule(
            "skn.bsn_valid",
            "bsn",
            lambda: E.ExpectColumnValuesToBeInSet(column="bsn_valid", value_set=[True]),
            "a BSN passes the eleven test",
        ),
    ]


def _gx() -> Any:
    import great_expectations as gx

    return gx


def debtor_rules() -> list[Rule]:
    E = _gx().expectations
    return [
        Rule(
            "debtor.parseable",
            "_errors",
            lambda: E.ExpectColumnValuesToBeInSet(column="parse_ok", value_set=[True]),
            "every field could be read",
        ),
        Rule(
            "debtor.id_present",
            "debtor_id",
            lambda: E.ExpectColumnValuesToNotBeNull(column="debtor_id"),
            "a debtor id is present",
        ),
        Rule(
            "debtor.fields_fit",
            "debtor_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="fields_fit", value_set=[True]),
            "no field longer than the ledger keeps (id 64, name 200, e-mail 254, ...)",
        ),
        Rule(
            "debtor.id_unique",
            "debtor_id",
            lambda: E.ExpectColumnValuesToBeUnique(column="debtor_id"),
            "debtor ids are unique in the batch",
        ),
        Rule(
            "debtor.name_present",
            "name",
            lambda: E.ExpectColumnValuesToBeInSet(column="name_present", value_set=[True]),
            "a name is present",
        ),
        Rule(
            "debtor.text_clean",
            "name",
            lambda: E.ExpectColumnValuesToBeInSet(column="name_clean", value_set=[True]),
            "no replacement or control characters (wrong encoding)",
        ),
        Rule(
            "debtor.email_syntax",
            "email",
            lambda: E.ExpectColumnValuesToBeInSet(column="email_ok", value_set=[True]),
            "e-mail address syntax",
        ),
        Rule(
            "debtor.postcode_format",
            "postcode",
            lambda: E.ExpectColumnValuesToBeInSet(column="postcode_ok", value_set=[True]),
            "Dutch postcode 1234 AB",
        ),
        Rule(
            "debtor.iban_valid",
            "iban",
            lambda: E.ExpectColumnValuesToBeInSet(column="iban_valid", value_set=[True]),
            "IBAN check digits (schwifty)",
        ),
        Rule(
            "debtor.phone_e164",
            "phone",
            lambda: E.ExpectColumnValuesToBeInSet(column="phone_valid", value_set=[True]),
            "phone number valid E.164",
        ),
        Rule(
            "debtor.reachable",
            "debtor_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="reachable", value_set=[True]),
            "an e-mail, phone or postal address",
        ),
    ]


def invoice_rules(currencies: tuple[str, ...] = ("EUR",)) -> list[Rule]:
    E = _gx().expectations
    cur = list(currencies)
    return [
        Rule(
            "invoice.parseable",
            "_errors",
            lambda: E.ExpectColumnValuesToBeInSet(column="parse_ok", value_set=[True]),
            "every field could be read",
        ),
        Rule(
            "invoice.id_present",
            "invoice_id",
            lambda: E.ExpectColumnValuesToNotBeNull(column="invoice_id"),
            "an invoice id is present",
        ),
        Rule(
            "invoice.fields_fit",
            "invoice_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="fields_fit", value_set=[True]),
            "no field longer than the ledger keeps (ids 64, reference 35, currency 3)",
        ),
        Rule(
            "invoice.id_unique",
            "invoice_id",
            lambda: E.ExpectColumnValuesToBeUnique(column="invoice_id"),
            "invoice ids are unique in the batch",
        ),
        Rule(
            "invoice.amount_present",
            "amount_cents",
            lambda: E.ExpectColumnValuesToNotBeNull(column="amount_cents"),
            "an amount is present",
        ),
        Rule(
            "invoice.amount_positive",
            "amount_cents",
            lambda: E.ExpectColumnValuesToBeBetween(
                column="amount_cents", min_value=1, max_value=MAX_PLAUSIBLE_CENTS
            ),
            "amount positive and plausible",
        ),
        Rule(
            "invoice.open_present",
            "open_cents",
            lambda: E.ExpectColumnValuesToNotBeNull(column="open_cents"),
            "an open amount is present (the mapping takes the amount where a source has none)",
        ),
        Rule(
            "invoice.open_not_negative",
            "open_cents",
            lambda: E.ExpectColumnValuesToBeBetween(column="open_cents", min_value=0),
            "open amount not negative",
        ),
        Rule(
            "invoice.open_within_amount",
            "open_cents",
            lambda: E.ExpectColumnValuesToBeInSet(column="open_within_amount", value_set=[True]),
            "open amount, costs and interest aside, not above the invoice amount",
        ),
        Rule(
            "invoice.components_within_open",
            "costs_cents",
            lambda: E.ExpectColumnValuesToBeInSet(
                column="components_within_open", value_set=[True]
            ),
            "open costs and interest not negative and together not above the open amount",
        ),
        Rule(
            "invoice.currency",
            "currency",
            lambda: E.ExpectColumnValuesToBeInSet(column="currency", value_set=cur),
            f"currency in {cur}",
        ),
        Rule(
            "invoice.dates_present",
            "due_date",
            lambda: E.ExpectColumnValuesToNotBeNull(column="due_date"),
            "a due date is present",
        ),
        Rule(
            "invoice.due_after_invoice",
            "due_date",
            lambda: E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="due_date", column_B="invoice_date", or_equal=True
            ),
            "due date on or after invoice date",
        ),
        Rule(
            "invoice.due_not_absurd",
            "due_date",
            lambda: E.ExpectColumnValuesToBeInSet(column="due_not_absurd", value_set=[True]),
            "due date not absurdly far after the invoice date (400 days by default)",
        ),
        Rule(
            "invoice.reference_check_digit",
            "payment_reference",
            lambda: E.ExpectColumnValuesToBeInSet(column="reference_valid", value_set=[True]),
            "payment reference check digit",
        ),
        Rule(
            "invoice.debtor_known",
            "debtor_id",
            lambda: E.ExpectColumnValuesToBeInSet(column="debtor_known", value_set=[True]),
            "the invoice's debtor is known",
        ),
    ]


#: columns that never reach GX (and so never its results or Data Docs)
PERSONAL_COLUMNS = frozenset(
    {
        "name",
        "email",
        "phone",
        "iban",
        "street",
        "postcode",
        "city",
        "counterparty_iban",
        "counterparty_name",
        "remittance",
        "bsn",
        "_errors",
    }
)


#: every failing row of every rule, as its position in the batch (the frame's index: a
#: record without an id has one too), and nothing else per row: GX's values of those rows
#: (a dict per row, its counts of them) cost it half of its time on a day's invoices,
#: mostly in storing the results. Quarantine shows each failing value from the batch as
#: read; the Data Docs show how many rows failed each rule, without examples.
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}


def _suite_columns(suite: Any) -> list[str]:
    """The columns a suite's expectations name, in their order, each once."""
    out: dict[str, None] = {}
    for exp in suite.expectations:
        for attr in ("column", "column_A", "column_B"):
            name = getattr(exp, attr, None)
            if isinstance(name, str):
                out[name] = None
    return list(out)


def gx_frame(prepared: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """What GX is given of a batch: only the columns its suite names, never a personal
    one (a rule on a missing column fails to run, and says so). GX hashes every column
    it is given into the batch's id; the whole batch cost it 0.1 s in 100,000 rows.
    A nullable integer column (``Int64``: the amounts) goes as numpy ``int64``, or as
    ``float64`` where it has gaps: GX checks ``Between`` value by value in Python for
    any other dtype, a third of its time on the invoices. The float is exact up to
    2**53 cents, and past that still on the same side of every bound, so no check
    changes; the value quarantine shows is the record's own, never this frame's."""
    keep = [c for c in columns if c in prepared.columns and c not in PERSONAL_COLUMNS]
    frame = prepared[keep].reset_index(drop=True)  # a row's label is its position
    for c in keep:
        col = frame[c]
        dtype = col.dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(
            dtype
        ):
            frame[c] = col.astype("float64" if col.hasnans else "int64")
    return frame


class Validator:
    """One GX context for a run; validates DataFrames against named rule sets, one suite
    per source and entity. With ``data_docs_dir`` the run's results are written there as
    GX Data Docs (HTML) by ``build_docs``."""

    def __init__(self, data_docs_dir: str | None = None) -> None:
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._ctx = gx.get_context(mode="ephemeral")
        self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self._ctx.data_sources.add_pandas("vangnet")
        self._definitions: dict[str, Any] = {}
        self.data_docs_dir = data_docs_dir
        if data_docs_dir:
            self._ctx.add_data_docs_site(
                "vangnet",
                {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(data_docs_dir),
                    },
                },
            )

    def _definition(self, key: str, rules: list[Rule]) -> Any:
        if key not in self._definitions:
            gx = _gx()
            suite = self._ctx.suites.add(gx.ExpectationSuite(name=key))
            for rule in rules:
                exp = rule.build()
                exp.meta = {"rule": rule.name, "explain": rule.explain}
                suite.add_expectation(exp)
            asset = self._source.add_dataframe_asset(key)
            batch = asset.add_batch_definition_whole_dataframe(key)
            definition = self._ctx.validation_definitions.add(
                gx.ValidationDefinition(name=key, data=batch, suite=suite)
            )
            self._definitions[key] = (definition, _suite_columns(suite))
        return self._definitions[key]

    def validate(
        self,
        entity: str,
        df: pd.DataFrame,
        rules: list[Rule],
        id_column: str,
        prepared: pd.DataFrame,
        source: str = "any",
    ) -> ValidationOutcome:
        """``df`` is the batch as read; ``prepared`` the same rows with derived columns."""
        if df.empty:
            return ValidationOutcome(
                entity, 0, df, df.iloc[0:0], {}, {r.name: 0 for r in rules}, []
            )
        definition, columns = self._definition(f"{source}.{entity}", rules)
        frame = gx_frame(prepared, columns)
        try:
            result = definition.run(
                batch_parameters={"dataframe": frame},
                result_format=RESULT_FORMAT,
            )
        finally:
            self._forget_batch()
        by_rule = {r.name: r for r in rules}
        bad_rows: dict[int, list[dict[str, Any]]] = {}
        warnings: dict[int, list[str]] = {}
        per_rule = {r.name: 0 for r in rules}
        for res in result.results:
            rule = by_rule[res.expectation_config.meta["rule"]]
            if res.exception_info and res.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"rule {rule.name} could not run: {res.exception_info.get('exception_message')}"
                )
            if res.success:
                continue
            rows = {int(i) for i in (res.result.get("unexpected_index_list") or [])}
            per_rule[rule.name] = len(rows)
            if not rule.blocking:
                for i in rows:
                    warnings.setdefault(i, []).append(rule.name)
                continue
            # one cell, not the row (``df.iloc[i]`` built a Series of the whole row for it)
            column = df[rule.column] if rule.column in df.columns else None
            for i in rows:
                raw = column.iat[i] if column is not None else None
                bad_rows.setdefault(i, []).append(
                    {
                        "rule": rule.name,
                        "column": rule.column,
                        "value": to_json_value(mask_value(rule.column, raw)),
                    }
                )
        mask = pd.Series(False, index=range(len(df)))
        mask[list(bad_rows)] = True
        mask.index = df.index
        rejected = df[mask]
        keys: dict[int, str] = {}  # in rejected order
        if bad_rows:
            ids = df[id_column]
            keys = {i: _record_key(ids.iat[i], i) for i in sorted(bad_rows)}
        failures = {keys[i]: bad_rows[i] for i in keys}
        return ValidationOutcome(
            entity,
            len(df),
            df[~mask],
            rejected,
            failures,
            per_rule,
            list(keys.values()),
            warnings=warnings,
        )

    def _forget_batch(self) -> None:
        """Drop the frame GX keeps of the last batch it validated: its execution engine
        holds it (as batch data, and in the batch) until the next run. A validator that
        lives long (``shared_validator``, in the bank lane's worker) kept the last
        statement file's lines for the rest of the cycle, and validate's the last
        chunk's for the rest of the stage. GX has no public call for it (1.x)."""
        engine = getattr(self._source, "_execution_engine", None)
        manager = getattr(engine, "batch_manager", None)
        if manager is None:
            return
        manager._batch_data_cache.clear()
        manager.reset_batch_cache()

    def build_docs(self) -> str | None:
        """Write the Data Docs of this run's validations; the index page's path."""
        if not self.data_docs_dir or not self._definitions:
            return None
        self._ctx.build_data_docs(site_names=["vangnet"])
        return str(Path(self.data_docs_dir) / "index.html")


_SHARED: list[Validator] = []


def shared_validator() -> Validator:
    """One GX context per process for checks that run per file or per fetch (statement
    lines, Schuldenknooppunt messages), never one per batch; suites are kept per source
    and entity, so every caller can share it."""
    if not _SHARED:
        _SHARED.append(Validator())
    return _SHARED[0]


def _record_key(rid: Any, position: int) -> str:
    if _missing(rid):
        return f"<row {position}>"
    return str(rid)


def batch_level_error(
    entity: str, outcome: ValidationOutcome, max_reject_share: float
) -> str | None:
    """A batch that is clearly broken stops the creditor's contact for this cycle."""
    every_zero = entity == "invoices" and amounts_all_zero(outcome)
    return batch_stop(entity, outcome.checked, len(outcome.rejected), every_zero, max_reject_share)


def amounts_all_zero(outcome: ValidationOutcome) -> bool:
    """Every record of the outcome, passed or rejected, has a zero (or unreadable)
    ``amount_cents``; True for none."""
    return all(
        bool((pd.to_numeric(part["amount_cents"], errors="coerce").fillna(0) == 0).all())
        for part in (outcome.valid, outcome.rejected)
        if len(part)
    )


def batch_stop(
    entity: str, checked: int, rejected: int, every_amount_zero: bool, max_reject_share: float
) -> str | None:
    """``batch_level_error`` from the batch's counts (a batch validated in chunks adds
    them up): too large a share rejected, or (invoices) every amount zero."""
    if checked >= 20 and rejected / checked > max_reject_share:
        return (
            f"{entity}: {rejected} of {checked} records ({rejected / checked:.0%}) failed "
            f"validation, above the {max_reject_share:.0%} limit: the export looks broken"
        )
    if entity == "invoices" and checked >= 20 and every_amount_zero:
        return "invoices: every amount is zero: the export looks broken"
    return None


__all__ = [
    "PERSONAL_COLUMNS",
    "Rule",
    "ValidationOutcome",
    "Validator",
    "shared_validator",
    "batch_level_error",
    "batch_stop",
    "amounts_all_zero",
    "debtor_rules",
    "derive_message_checks",
    "derive_statement_checks",
    "message_rules",
    "statement_rules",
    "derive_debtor_checks",
    "derive_invoice_checks",
    "derive_payment_checks",
    "invoice_rules",
    "payment_rules",
]
