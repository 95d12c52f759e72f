import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from transforms.wik import MAXIMUM, MINIMUM, collection_costs, expected_delivery, wik_deadline


def test_minimum_applies_to_small_claims() -> None:
    assert collection_costs(Decimal("100")) == Decimal("40.00")


def test_scale_at_band_edges() -> None:
    assert collection_costs(Decimal("2500")) == Decimal("375.00")
    assert collection_costs(Decimal("5000")) == Decimal("625.00")
    assert collection_costs(Decimal("10000")) == Decimal("875.00")
    assert collection_costs(Decimal("200000")) == Decimal("2775.00")


def test_maximum_caps_costs_even_with_vat() -> None:
    assert collection_costs(Decimal("2000000")) == MAXIMUM
    assert collection_costs(Decimal("2000000"), Decimal("0.21")) == MAXIMUM


def test_vat_uplift_only_when_asked() -> None:
    assert collection_costs(Decimal("1000"), Decimal("0.21")) == Decimal("181.50")


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000000"), places=2))
def test_costs_stay_within_statutory_bounds(principal: Decimal) -> None:
    c = collection_costs(principal, Decimal("0.21"))
    assert MINIMUM <= c <= MAXIMUM
    assert c == c.quantize(Decimal("0.01"))


@given(st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_deadline_is_at_least_14_full_days_after_expected_receipt(sent: dt.date) -> None:
    receipt = expected_delivery(sent)
    assert receipt > sent and receipt.weekday() not in (6, 0)
    assert (wik_deadline(sent) - receipt).days >= 14


def test_statutory_interest_per_year_with_compounding() -> None:
    from transforms.wik import statutory_interest_cents

    start = dt.date(2025, 3, 1)
    assert statutory_interest_cents(1_000_000, start, dt.date(2026, 3, 1)) == 60_000
    # the second year runs on principal plus the first year's interest
    assert statutory_interest_cents(1_000_000, start, dt.date(2027, 3, 1)) == 60_000 + 63_600
    assert statutory_interest_cents(1_000_000, start, dt.date(2025, 4, 1)) == round(
        1_000_000 * 0.06 * 31 / 365
    )
    assert statutory_interest_cents(1_000_000, start, start) == 0
    assert (
        statutory_interest_cents(1_000_000, start, dt.date(2026, 3, 1), commercial=True) == 111_500
    )


def test_a_rate_change_splits_the_period_and_unknown_rates_are_refused() -> None:
    from decimal import Decimal

    import pytest

    from transforms.wik import RateUnknown, statutory_interest_cents

    rates = (
        (dt.date(2025, 1, 1), Decimal("6"), Decimal("11.15")),
        (dt.date(2025, 7, 1), Decimal("8"), Decimal("12")),
    )
    got = statutory_interest_cents(365_000, dt.date(2025, 6, 1), dt.date(2025, 8, 1), rates)
    assert got == round(365_000 * (0.06 * 30 + 0.08 * 31) / 365)
    with pytest.raises(RateUnknown, match="before 2025-01-01"):
        statutory_interest_cents(100, dt.date(2024, 12, 1), dt.date(2025, 2, 1))


def test_small_claims_share_a_cap_of_140_per_six_months() -> None:
    from transforms.wik import capped_small_claim_costs

    on = dt.date(2026, 11, 24)
    assert capped_small_claim_costs(20_000, 4_000, 0, on) == 4_000
    assert capped_small_claim_costs(20_000, 4_000, 12_000, on) == 2_000
    assert capped_small_claim_costs(20_000, 4_000, 14_000, on) == 0
    assert capped_small_claim_costs(26_667, 4_000, 14_000, on) == 4_000  # not a small claim
    assert capped_small_claim_costs(20_000, 4_000, 14_000, dt.date(2024, 9, 30)) == 4_000
