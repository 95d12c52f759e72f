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
