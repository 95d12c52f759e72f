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


#: a claim below this principal counts as small (15% of it is under the EUR 40 minimum)
SMALL_CLAIM_CENTS = 26_667
#: costs on small claims of one debtor: at most EUR 140 per 6 months (from 1 October 2024)
SMALL_CLAIMS_CAP_CENTS = 14_000
SMALL_CLAIMS_WINDOW_DAYS = 183
SMALL_CLAIMS_CAP_FROM = dt.date(2024, 10, 1)


def capped_small_claim_costs(
    principal_cents: int, costs_cents: int, booked_last_6_months: int, on: dt.date
) -> int:
    """Costs after the small-claims cap: for a principal below EUR 266.67, the costs of
    this and the debtor's other small claims in the last six months stay within EUR 140."""
    if principal_cents >= SMALL_CLAIM_CENTS or on < SMALL_CLAIMS_CAP_FROM:
        return costs_cents
    return max(0, min(costs_cents, SMALL_CLAIMS_CAP_CENTS - booked_last_6_months))


#: statutory interest, percent per year, by start date (DOMAIN.md: consumer 6%, commercial
#: 11.15% from 1 January 2025; later rates unverified). Configurable per creditor.
DEFAULT_INTEREST_RATES: tuple[tuple[dt.date, Decimal, Decimal], ...] = (
    (dt.date(2025, 1, 1), Decimal("6.00"), Decimal("11.15")),
)


class RateUnknown(ValueError):
    """No statutory rate is known for (part of) the period asked."""


def statutory_interest_cents(
    principal_cents: int,
    start: dt.date,
    end: dt.date,
    rates: tuple[tuple[dt.date, Decimal, Decimal], ...] = DEFAULT_INTEREST_RATES,
    commercial: bool = False,
) -> int:
    """Statutory interest (art. 6:119 BW; 6:119a for commercial) on ``principal_cents``
    from ``start`` to ``end``: simple interest per day at the rate in force, added to the
    principal at the end of each full year (the yearly compounding of art. 6:119 lid 2).
    Raises ``RateUnknown`` for days before the first known rate."""
    if end <= start or principal_cents <= 0:
        return 0
    table = sorted(rates)
    if start < table[0][0]:
        raise RateUnknown(f"no statutory interest rate known before {table[0][0].isoformat()}")
    base = Decimal(principal_cents)
    owed = Decimal(0)
    year_start = start
    while year_start < end:
        try:
            year_end = min(year_start.replace(year=year_start.year + 1), end)
        except ValueError:  # 29 February
            year_end = min(year_start.replace(year=year_start.year + 1, day=28), end)
        this_year = Decimal(0)
        day = year_start
        while day < year_end:
            rate = next(r for r in reversed(table) if r[0] <= day)
            pct = rate[2] if commercial else rate[1]
            nxt = next((r[0] for r in table if r[0] > day), None)
            stop = min(year_end, nxt) if nxt else year_end
            days = (stop - day).days
            this_year += base * pct / 100 * days / 365
            day = stop
        owed += this_year
        if year_end - year_start >= dt.timedelta(days=365):
            base += this_year  # a full year: the interest joins the principal
        year_start = year_end
    return int(owed.quantize(Decimal(1), rounding=ROUND_HALF_UP))


__all__ = [
    "DEFAULT_INTEREST_RATES",
    "SMALL_CLAIMS_CAP_CENTS",
    "SMALL_CLAIM_CENTS",
    "SMALL_CLAIMS_WINDOW_DAYS",
    "RateUnknown",
    "capped_small_claim_costs",
    "statutory_interest_cents",
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
