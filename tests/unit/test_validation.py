"""Every rule has at least one record that breaks it and one that just passes."""

import datetime as dt
import gc

import pandas as pd
import pytest

from ledger.records import DEBTOR_COLUMNS, INVOICE_COLUMNS
from transforms import validation as v

GOOD_DEBTOR = {
    "debtor_id": "R1",
    "name": "A. Jansen",
    "email": "a@example.nl",
    "phone": "+31612345678",
    "iban": "NL91ABNA0417164300",
    "street": "Dorpsstraat 1",
    "postcode": "1234 AB",
    "city": "Urk",
    "language": "nl",
    "source_version": "1",
    "_errors": None,
}
GOOD_INVOICE = {
    "invoice_id": "F1",
    "debtor_id": "R1",
    "invoice_date": dt.date(2026, 1, 1),
    "due_date": dt.date(2026, 1, 1),
    "amount_cents": 1,
    "open_cents": 1,
    "costs_cents": 0,
    "interest_cents": 0,
    "currency": "EUR",
    "payment_reference": "5000056789012345",
    "paid_date": None,
    "prior_reminders": 0,
    "source_version": "1",
    "_errors": None,
}

DEBTOR_CASES = {
    "debtor.parseable": {"_errors": "phone: unreadable"},
    "debtor.id_present": {"debtor_id": None},
    "debtor.name_present": {"name": None},
    "debtor.text_clean": {"name": "M\ufffdller"},
    "debtor.email_syntax": {"email": "a@b"},
    "debtor.postcode_format": {"postcode": "0123 AB"},
    "debtor.iban_valid": {"iban": "NL00INGB0001234567"},
    "debtor.phone_e164": {"phone": "0612"},
    "debtor.reachable": {"email": None, "phone": None, "street": None},
}
INVOICE_CASES = {
    "invoice.parseable": {"_errors": "due_date: bad"},
    "invoice.id_present": {"invoice_id": None},
    "invoice.amount_present": {"amount_cents": None, "open_cents": 0},
    "invoice.amount_positive": {"amount_cents": 0, "open_cents": 0},
    "invoice.open_present": {"open_cents": None},
    "invoice.open_not_negative": {"open_cents": -1},
    "invoice.open_within_amount": {"open_cents": 2},
    "invoice.components_within_open": {"open_cents": 1, "costs_cents": 1, "interest_cents": 1},
    "invoice.currency": {"currency": "USD"},
    "invoice.dates_present": {"due_date": None},
    "invoice.due_after_invoice": {"due_date": dt.date(2025, 12, 31)},
    "invoice.due_not_absurd": {"due_date": dt.date(2027, 2, 6)},  # 401 days; 400 passes
    "invoice.reference_check_digit": {"payment_reference": "6000056789012345"},
    "invoice.debtor_known": {"debtor_id": "R404"},
}


@pytest.fixture(scope="module")
def validator() -> v.Validator:
    return v.Validator()


def _debtors(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.DataFrame(rows, columns=[*DEBTOR_COLUMNS, "_errors"])
    return df, v.derive_debtor_checks(df)


def _invoices(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.DataFrame(rows, columns=[*INVOICE_COLUMNS, "_errors"])
    df["amount_cents"] = df["amount_cents"].astype("Int64")
    for c in ("open_cents", "costs_cents", "interest_cents"):
        df[c] = df[c].astype("Int64")
    return df, v.derive_invoice_checks(df, {"R1"})


def test_open_costs_and_interest_may_lift_open_above_the_principal(
    validator: v.Validator,
) -> None:
    """An item of 100.00 with 40.00 WIK costs and 1.20 interest open: 141.20 is owed."""
    with_costs = {
        **GOOD_INVOICE,
        "amount_cents": 10000,
        "open_cents": 14120,
        "costs_cents": 4000,
        "interest_cents": 120,
    }
    df, prepared = _invoices([with_costs])
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    assert list(out.valid["invoice_id"]) == ["F1"] and not out.failures


@pytest.mark.parametrize("rule", sorted(DEBTOR_CASES))
def test_debtor_rule_breaks_and_passes(validator: v.Validator, rule: str) -> None:
    bad = {**GOOD_DEBTOR, "debtor_id": "R2", **DEBTOR_CASES[rule]}
    df, prepared = _debtors([GOOD_DEBTOR, bad])
    out = validator.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared)
    assert list(out.valid["debtor_id"]) == ["R1"]  # the rest of the batch goes on
    key = next(iter(out.failures))
    assert rule in {f["rule"] for f in out.failures[key]}
    assert out.per_rule[rule] == 1


def test_duplicate_debtor_ids_are_both_held(validator: v.Validator) -> None:
    df, prepared = _debtors([GOOD_DEBTOR, dict(GOOD_DEBTOR)])
    out = validator.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared)
    assert out.valid.empty and out.per_rule["debtor.id_unique"] == 2


@pytest.mark.parametrize("rule", sorted(INVOICE_CASES))
def test_invoice_rule_breaks_and_passes(validator: v.Validator, rule: str) -> None:
    bad = {**GOOD_INVOICE, "invoice_id": "F2", **INVOICE_CASES[rule]}
    df, prepared = _invoices([GOOD_INVOICE, bad])
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    assert list(out.valid["invoice_id"]) == ["F1"]
    fails = next(iter(out.failures.values()))
    assert rule in {f["rule"] for f in fails}


def test_personal_values_are_masked_in_failures(validator: v.Validator) -> None:
    bad = {**GOOD_DEBTOR, "debtor_id": "R2", "iban": "NL00INGB0001234567", "email": "jan@x"}
    df, prepared = _debtors([bad])
    out = validator.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared)
    values = {f["rule"]: f["value"] for f in out.failures["R2"]}
    assert values["debtor.iban_valid"] == "NL** **** **** **45 67"
    assert values["debtor.email_syntax"] == "j***@x"


def test_a_mostly_broken_batch_stops_the_creditor(validator: v.Validator) -> None:
    rows = [
        {**GOOD_INVOICE, "invoice_id": f"F{i}", "currency": "USD" if i % 3 else "EUR"}
        for i in range(30)
    ]
    df, prepared = _invoices(rows)
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    msg = v.batch_level_error("invoices", out, 0.5)
    assert msg is not None and "20 of 30" in msg and "looks broken" in msg


GOOD_PAYMENT = {
    "payment_id": "P1",
    "debtor_id": "R1",
    "invoice_id": "F1",
    "paid_on": dt.date(2026, 11, 2),
    "amount_cents": 4500,
    "currency": "EUR",
    "method": "ideal",
    "source_version": "1",
    "_errors": None,
}
PAYMENT_CASES = {
    "payment.parseable": {"_errors": "paid_on: bad"},
    "payment.id_present": {"payment_id": None},
    "payment.amount_plausible": {"amount_cents": 50_000_000},
    "payment.amount_not_zero": {"amount_cents": 0},
    "payment.currency": {"currency": "GBP"},
    "payment.debtor_known": {"debtor_id": "R404"},
}


@pytest.mark.parametrize("rule", sorted(PAYMENT_CASES))
def test_payment_rule_breaks_and_passes(validator: v.Validator, rule: str) -> None:
    from ledger.records import ERP_PAYMENT_COLUMNS

    bad = {**GOOD_PAYMENT, "payment_id": "P2", **PAYMENT_CASES[rule]}
    df = pd.DataFrame([GOOD_PAYMENT, bad], columns=[*ERP_PAYMENT_COLUMNS, "_errors"])
    df["amount_cents"] = df["amount_cents"].astype("Int64")
    out = validator.validate(
        "payments", df, v.payment_rules(), "payment_id", v.derive_payment_checks(df, {"R1"})
    )
    assert list(out.valid["payment_id"]) == ["P1"]
    assert rule in {f["rule"] for f in next(iter(out.failures.values()))}


def test_all_zero_amounts_stop_even_when_any_share_of_bad_records_is_allowed(
    validator: v.Validator,
) -> None:
    rows = [
        {**GOOD_INVOICE, "invoice_id": f"F{i}", "amount_cents": 0, "open_cents": 0}
        for i in range(25)
    ]
    df, prepared = _invoices(rows)
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    assert (
        v.batch_level_error("invoices", out, 1.0)
        == "invoices: every amount is zero: the export looks broken"
    )


def test_rejected_keys_follow_the_rejected_rows(validator: v.Validator) -> None:
    df, prepared = _debtors(
        [
            GOOD_DEBTOR,
            {**GOOD_DEBTOR, "debtor_id": None},
            {**GOOD_DEBTOR, "debtor_id": "R9", "email": "x"},
        ]
    )
    out = validator.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared)
    assert out.rejected_keys == ["<row 1>", "R9"]
    assert [
        set(f["rule"] for f in out.failures[k]) >= {r}
        for k, r in zip(
            out.rejected_keys, ["debtor.id_present", "debtor.email_syntax"], strict=True
        )
    ] == [True, True]


# ---------------------------------------------------------------- bad-input corpus
def _a_reference_with_a_leading_zero() -> str:
    from transforms.references import new_betalingskenmerk

    return next(r for n in range(1, 500) if (r := new_betalingskenmerk(n)).startswith("0"))


def test_a_reference_that_lost_its_leading_zero_is_held(validator: v.Validator) -> None:
    """Excel turned 0xxxxxxxxxxxxxxx into a 15-digit number: the check digit no longer fits."""
    good = _a_reference_with_a_leading_zero()
    ok = {**GOOD_INVOICE, "payment_reference": good}
    lost = {**GOOD_INVOICE, "invoice_id": "F2", "payment_reference": good.lstrip("0")}
    df, prepared = _invoices([ok, lost])
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    assert list(out.valid["invoice_id"]) == ["F1"]
    assert [f["rule"] for f in out.failures["F2"]] == ["invoice.reference_check_digit"]


def test_excel_mangled_amounts_and_short_dates_through_the_mapping(validator: v.Validator) -> None:
    from connectors.odbc.mapping import to_canonical

    cols = {c: c for c in ("invoice_id", "debtor_id", "invoice_date", "due_date", "amount_cents")}
    rows = [
        {
            "invoice_id": "F1",
            "debtor_id": "R1",
            "invoice_date": "01-12-26",
            "due_date": "31-12-26",
            "amount_cents": "1.234,56",
        },
        {
            "invoice_id": "F2",
            "debtor_id": "R1",
            "invoice_date": "01-12-26",
            "due_date": "31-12-26",
            "amount_cents": "1,23E+05",
        },
    ]
    df = to_canonical("invoices", rows, cols)
    assert df.loc[0, "amount_cents"] == 123456 and df.loc[0, "due_date"] == dt.date(2026, 12, 31)
    out = validator.validate(
        "invoices", df, v.invoice_rules(), "invoice_id", v.derive_invoice_checks(df, {"R1"})
    )
    assert list(out.valid["invoice_id"]) == ["F1"]
    (fail,) = [f for f in out.failures["F2"] if f["rule"] == "invoice.parseable"]
    assert "scientific notation" in fail["value"]


def test_statement_lines_have_their_own_suite(validator: v.Validator) -> None:
    from ledger.records import PAYMENT_COLUMNS

    base = dict.fromkeys(PAYMENT_COLUMNS)
    base.update(
        booking_date=dt.date(2026, 11, 24), amount_cents=5000, currency="EUR", reversal=False
    )
    lines = [
        {**base, "payment_id": "ok", "counterparty_iban": "0121470966"},  # pre-IBAN passes
        {**base, "payment_id": "usd", "currency": "USD"},
        {**base, "payment_id": "iban", "counterparty_iban": "NL00INGB0001234567"},
        {**base, "payment_id": "ref", "structured_reference": "6000056789012345"},
        {**base, "payment_id": "zero", "amount_cents": 0},
        {**base, "payment_id": "future", "booking_date": dt.date(2027, 3, 1)},
    ]
    df = pd.DataFrame(lines, columns=list(PAYMENT_COLUMNS))
    out = validator.validate(
        "statement_lines",
        df,
        v.statement_rules(),
        "payment_id",
        v.derive_statement_checks(df, dt.date(2026, 11, 24)),
    )
    assert list(out.valid["payment_id"]) == ["ok", "iban", "ref"]  # money is never held back
    assert {k: [f["rule"] for f in fs] for k, fs in out.failures.items()} == {
        "usd": ["statement.currency"],
        "zero": ["statement.amount_not_zero"],
        "future": ["statement.booking_date_plausible"],
    }
    assert out.warnings == {
        2: ["statement.counterparty_iban_valid"],
        3: ["statement.reference_check_digit"],
    }


def test_a_validator_keeps_no_frame_of_what_it_validated() -> None:
    """A validator holds no frame once ``validate`` has returned: GX's engine kept its
    last batch's until the next run, and ``shared_validator`` lives as long as its
    process (the bank lane's worker: the last statement file's lines)."""
    val = v.Validator()
    rows = [{**GOOD_DEBTOR, "debtor_id": f"R{i}"} for i in range(1_234)]
    df, prepared = _debtors(rows)
    out = val.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared, "erp")
    assert out.checked == 1_234 and len(out.valid) == 1_234
    del df, prepared, out
    gc.collect()
    # the frame GX saw has the derived checks and no personal column: none is alive
    assert not [
        f
        for f in gc.get_objects()
        if isinstance(f, pd.DataFrame) and "iban_valid" in f.columns and "iban" not in f.columns
    ]


def test_gx_never_sees_a_personal_value(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Data Docs show what GX saw; personal columns are dropped before it looks."""
    docs = tmp_path / "docs"
    val = v.Validator(str(docs))
    bad = {
        **GOOD_DEBTOR,
        "debtor_id": "R2",
        "email": "jan.de.vries@voorbeeld",
        "name": "M\ufffdller",
    }
    df, prepared = _debtors([GOOD_DEBTOR, bad])
    out = val.validate("debtors", df, v.debtor_rules(), "debtor_id", prepared, "erp")
    assert {f["rule"] for f in out.failures["R2"]} == {"debtor.email_syntax", "debtor.text_clean"}
    index = val.build_docs()
    assert index and (docs / "index.html").exists()
    html = "".join(p.read_text(errors="ignore") for p in docs.rglob("*.html"))
    assert "erp.debtors" in html
    for personal in ("jan.de.vries", "ller", GOOD_DEBTOR["iban"], GOOD_DEBTOR["phone"]):
        assert personal not in html


def test_amounts_reach_gx_as_numbers_it_compares_at_once(validator: v.Validator) -> None:
    """GX gets only the columns its suite names, and the nullable amounts as numpy
    numbers (float where there is a gap): the checks and the values quarantine shows
    stay the record's own, a gap and an amount past 2**53 cents included."""
    huge = 2**53 + 1  # not a float: as one it would read 2**53
    rows = [
        GOOD_INVOICE,
        {**GOOD_INVOICE, "invoice_id": "F2", "amount_cents": None, "open_cents": 0},
        {**GOOD_INVOICE, "invoice_id": "F3", "amount_cents": huge, "open_cents": huge},
    ]
    df, _ = _invoices(rows)
    # as the record has them (a frame built from rows with a gap holds floats)
    df["amount_cents"] = pd.array([1, None, huge], dtype="Int64")
    df["open_cents"] = pd.array([1, 0, huge], dtype="Int64")
    prepared = v.derive_invoice_checks(df, {"R1"})
    out = validator.validate("invoices", df, v.invoice_rules(), "invoice_id", prepared)
    assert list(out.valid["invoice_id"]) == ["F1"]
    assert [f["rule"] for f in out.failures["F2"]] == ["invoice.amount_present"]
    assert {"rule": "invoice.amount_positive", "column": "amount_cents", "value": huge} in (
        out.failures["F3"]
    )

    frame = v.gx_frame(prepared, ["amount_cents", "name", "open_cents", "no_such_column"])
    assert list(frame.columns) == ["amount_cents", "open_cents"]
    assert str(frame["amount_cents"].dtype) == "float64"  # it has a gap
    assert str(frame["open_cents"].dtype) == "int64"
    assert frame["amount_cents"].isna().tolist() == [False, True, False]
