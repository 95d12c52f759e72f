import datetime as dt

import pytest

from transforms.selfservice import TokenError, sign, verify

KEY = b"k" * 32
D = dt.date(2026, 11, 24)


def test_a_token_opens_the_page_for_one_debtor_until_it_expires() -> None:
    t = sign(KEY, "woon", "R0000017", D + dt.timedelta(days=30), "abc")
    assert verify(KEY, t, "woon", D) == ("R0000017", "abc")
    assert "R0000017" not in t  # the debtor number is not readable in the URL
    with pytest.raises(TokenError, match="expired"):
        verify(KEY, t, "woon", D + dt.timedelta(days=31))
    with pytest.raises(TokenError, match="another creditor"):
        verify(KEY, t, "energie", D)
    with pytest.raises(TokenError, match="bad signature"):
        verify(b"x" * 32, t, "woon", D)
    payload, mac = t.split(".")
    forged = sign(b"y" * 32, "woon", "R0000018", D + dt.timedelta(days=30), "abc").split(".")[0]
    with pytest.raises(TokenError, match="bad signature"):
        verify(KEY, f"{forged}.{mac}", "woon", D)  # another debtor with this debtor's MAC
    with pytest.raises(TokenError, match="malformed"):
        verify(KEY, "nonsense", "woon", D)
    with pytest.raises(ValueError, match="32 bytes"):
        sign(b"short", "woon", "R1", D, "n")
