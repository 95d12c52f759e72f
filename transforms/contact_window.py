"""When a debtor may be contacted (Wki/Bki contact rules, DOMAIN.md).

No contact between 20:00 and 07:00 Europe/Amsterdam, nor on Sundays or public
holidays (``holidays`` NL plus configurable days equated by the Algemene termijnenwet).
The clock is always a parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

AMS = ZoneInfo("Europe/Amsterdam")


@lru_cache(maxsize=64)
def _nl_holidays(year: int) -> frozenset[dt.date]:
    # Dutch public holidays; Liberation Day counts every year under the Algemene
    # termijnenwet, which the `holidays` package only marks in lustrum years.
    days = set(holidays.country_holidays("NL", years=year))
    days.add(dt.date(year, 5, 5))
    return frozenset(days)


class ContactWindow:
    """Allowed contact moments for one creditor's policy."""

    def __init__(
        self,
        start: dt.time = dt.time(7, 0),
        end: dt.time = dt.time(20, 0),
        extra_closed_days: Iterable[dt.date] = (),
        closed_weekdays: Iterable[int] = (6,),  # Monday=0 .. Sunday=6
    ) -> None:
        if not start < end:
            raise ValueError("contact window start must be before its end")
        self.start, self.end = start, end
        self.extra = frozenset(extra_closed_days)
        self.closed_weekdays = frozenset(closed_weekdays)

    def is_closed_day(self, day: dt.date) -> bool:
        return (
            day.weekday() in self.closed_weekdays
            or day in _nl_holidays(day.year)
            or day in self.extra
        )

    def is_open(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(AMS)
        return not self.is_closed_day(local.date()) and self.start <= local.time() < self.end

    def next_open(self, moment: dt.datetime, preferred: dt.time | None = None) -> dt.datetime:
        """The first allowed moment at or after ``moment`` (at ``preferred`` hour when the
        day must roll over). Returned in Europe/Amsterdam."""
        local = moment.astimezone(AMS)
        if self.is_open(local):
            return local
        wanted = preferred if preferred and self.start <= preferred < self.end else self.start
        day = local.date()
        if local.time() >= self.start and not self.is_closed_day(day):
            day += dt.timedelta(days=1)  # after hours today
        elif local.time() < self.start and not self.is_closed_day(day):
            return dt.datetime.combine(day, wanted, AMS)
        while self.is_closed_day(day):
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, wanted, AMS)


__all__ = ["AMS", "ContactWindow"]
