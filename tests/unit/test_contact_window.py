import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from transforms.contact_window import AMS, ContactWindow

W = ContactWindow()


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=AMS)


def test_evening_rolls_to_next_morning() -> None:
    assert W.next_open(at(2026, 11, 24, 21, 5), dt.time(9, 30)) == at(2026, 11, 25, 9, 30)


def test_early_morning_waits_for_the_window() -> None:
    assert W.next_open(at(2026, 11, 24, 5, 0), dt.time(9, 30)) == at(2026, 11, 24, 9, 30)


def test_sunday_and_christmas_are_closed() -> None:
    assert W.next_open(at(2026, 11, 29, 10)).date() == dt.date(2026, 11, 30)  # Sunday
    assert W.next_open(at(2026, 12, 24, 21)).date() == dt.date(
        2026, 12, 28
    )  # 25, 26 holidays, 27 Sunday


def test_liberation_day_counts_every_year() -> None:
    assert W.is_closed_day(dt.date(2026, 5, 5))


def test_extra_closed_days_from_configuration() -> None:
    w = ContactWindow(extra_closed_days=[dt.date(2026, 11, 27)])
    assert w.next_open(at(2026, 11, 26, 20, 30)).date() == dt.date(2026, 11, 28)


@given(st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2030, 12, 31)))
def test_next_open_is_always_open_and_not_earlier(moment: dt.datetime) -> None:
    m = moment.replace(tzinfo=AMS)
    got = W.next_open(m, dt.time(9, 30))
    assert got >= m
    assert W.is_open(got)
    local = got.astimezone(AMS)
    assert dt.time(7) <= local.time() < dt.time(20) and local.weekday() != 6
