"""The fast path for Dutch IBANs gives schwifty's own verdict."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN

from transforms.validation import _NL_IBAN, _iban_ok


def schwifty_ok(text: str) -> bool:
    try:
        IBAN(text)
        return True
    except ValueError:
        return False


def test_every_check_digit_of_random_dutch_accounts() -> None:
    """For each account, all 100 check digits (00, 01 and 99 too): the fast path takes
    every one of them and agrees with schwifty on each, exactly one valid."""
    rnd = random.Random(11)
    for _ in range(300):
        bank = "".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=4))
        account = f"{rnd.randrange(10**10):010d}"
        verdicts = []
        for check in range(100):
            text = f"NL{check:02d}{bank}{account}"
            assert _NL_IBAN.fullmatch(text)
            verdicts.append(_iban_ok.__wrapped__(text))
            assert verdicts[-1] == schwifty_ok(text), text
        assert sum(verdicts) == 1


def test_what_the_fast_path_leaves_to_schwifty() -> None:
    for text in (
        "NL91 ABNA 0417 1643 00",  # written in blocks
        "nl91abna0417164300",  # lower case
        "NL91ABNA041716430",  # too short
        "NL91ABNA04171643000",  # too long
        "NL91ABN10417164300",  # a digit in the bank
        "NL91ABNA041716430\u0660",  # an Arabic-Indic zero: a digit to \d, not to NL's
        "DE89370400440532013000",
        "BE68539007547034",
    ):
        assert _NL_IBAN.fullmatch(text) is None, text
        assert _iban_ok.__wrapped__(text) == schwifty_ok(text), text
    assert _iban_ok.__wrapped__("NL91 ABNA 0417 1643 00") and _iban_ok.__wrapped__(
        "DE89370400440532013000"
    )


@st.composite
def near_dutch_ibans(draw: st.DrawFn) -> str:
    text = list(
        "NL"
        + draw(st.text("0123456789", min_size=2, max_size=2))
        + draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4))
        + draw(st.text("0123456789", min_size=10, max_size=10))
    )
    for _ in range(draw(st.integers(0, 2))):  # a slip or two
        i = draw(st.integers(0, len(text) - 1))
        text[i] = draw(st.sampled_from(["", "0", "9", "A", "a", " ", "O", "\u0661", text[i] * 2]))
    return "".join(text)


@settings(max_examples=3000, deadline=None)
@given(near_dutch_ibans())
def test_any_near_dutch_iban_is_judged_as_schwifty_would(text: str) -> None:
    assert _iban_ok.__wrapped__(text) == schwifty_ok(text)
