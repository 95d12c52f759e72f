"""Statutory extrajudicial collection costs (Wet incassokosten, WIK).

Scale of the Besluit vergoeding buitengerechtelijke incassokosten, art. 2 (DOMAIN.md):
15% of the first EUR 2,500, 10% of the next 2,500, 5% of the next 5,000, 1% of the next
190,000, 0.5% of the rest; minimum EUR 40, maximum EUR 6,775. VAT on top only for a
creditor that cannot deduct VAT, and the total stays within the maximum. Rounding:
half-up to cents, once, at the end.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MINIMUM = Decimal("40.00")
MAXIMUM = Decimal("6775.00")
_BANDS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("2500"), Decimal("0.15")),
    (Decimal("2500"), Decimal("0.10")),
    (Decimal("5000"), Decimal("0.05")),
    (Decimal("190000"), Decimal("0.01")),
)
_REST_RATE = Decimal("0.005")


def collection_costs(principal: Decimal, vat_rate: Decimal | None = None) -> Decimal:
    """WIK costs for a principal in euros; ``vat_rate`` (e.g. 0.21) only if applicable."""
    if principal <= 0:
        return Decimal("0.00")
    remaining = principal
    costs = Decimal(0)
    for width, rate in _BANDS:
        part = min(remaining, width)
        costs += part * rate
        remaining -= part
        if remaining <= 0:
            break
    if remaining > 0:
        costs += remaining * _REST_RATE
    costs = min(max(costs, MINIMUM), MAXIMUM)
    if vat_rate:
        costs = min(costs * (1 + vat_rate), MAXIMUM)
    return costs.quantize(CENT, rounding=ROUND_HALF_UP)


def collection_costs_cents(principal_cents: int, vat_rate: Decimal | None = None) -> int:
    euros = collection_costs(Decimal(principal_cents) / 100, vat_rate)
    return int(euros * 100)


__all__ = [
    "MAXIMUM",
    "MINIMUM",
    "collection_costs",
    "collection_costs_cents",
    "expected_delivery",
    "wik_deadline",
]


def expected_delivery(sent: dt.date, working_days: int = 2) -> dt.date:
    """Expected receipt of a letter: ``working_days`` post days later (no Sundays/Mondays
    delivery assumed absent: PostNL delivers letters Tuesday to Saturday)."""
    d = sent
    left = working_days
    while left > 0:
        d += dt.timedelta(days=1)
        if d.weekday() not in (6, 0):  # no letter delivery on Sunday or Monday
            left -= 1
    return d


def wik_deadline(sent: dt.date, working_days: int = 2) -> dt.date:
    """Last day to pay: 14 full days starting the day after expected receipt."""
    return expected_delivery(sent, working_days) + dt.timedelta(days=14)
