"""The fast path for Dutch numbers gives libphonenumber's own answers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.phones import normal_by_libphonenumber as libphonenumber_normal
from transforms.phones import normal_phone, valid_phone
from transforms.phones import valid_by_libphonenumber as libphonenumber_valid


def test_the_shapes_of_a_dutch_export() -> None:
    for written in (
        "06-12345678",
        "06 1234 5678",
        "+31 6 12345678",
        "0031612345678",
        "+31612345678",
        " 06.12.34.56.78 ",
        "06/12345678",
    ):
        assert normal_phone(written) == "+31612345678", written
    assert normal_phone("020-1234567") == "+31201234567"
    assert valid_phone("+31612345678") and valid_phone("+31201234567")
    assert not valid_phone("+31601234567")  # 060 is no Dutch number kind
    assert not valid_phone("0612345678")  # valid, but not in international form


def test_what_the_fast_path_leaves_to_libphonenumber() -> None:
    assert normal_phone("+32 470 12 34 56") == "+32470123456"  # Belgian
    assert normal_phone("+31 (0)6 12345678") == "+31612345678"
    assert normal_phone("not a number") == "not a number"
    assert valid_phone("+32470123456")
    assert not valid_phone("bel me")


@pytest.mark.parametrize("lead", range(1, 10))
def test_every_four_digit_prefix_gets_libphonenumbers_verdict(lead: int) -> None:
    """The NL patterns decide on at most the first four digits; each prefix with two
    different tails, in E.164 and written nationally."""
    for rest in range(1000):
        prefix = f"{lead}{rest:03d}"
        for tail in ("00000", "98765"):
            e164 = f"+31{prefix}{tail}"
            assert valid_phone(e164) == libphonenumber_valid(e164), e164
            national = f"0{prefix[:2]}-{prefix[2:]}{tail}"
            assert normal_phone(national) == libphonenumber_normal(national), national


_SEP = st.sampled_from(["", " ", "-", ".", "/", "\u00a0", "  "])


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    digits = draw(st.text("0123456789", min_size=0, max_size=13))
    prefix = draw(st.sampled_from(["", "0", "+31", "0031", "+31 0", "+32", "00", "+"]))
    body = "".join(d + draw(_SEP) for d in digits)
    return draw(st.sampled_from(["", " "])) + prefix + draw(_SEP) + body


@settings(max_examples=3000, deadline=None)
@given(written_numbers())
def test_any_written_number_normalises_as_libphonenumber_would(written: str) -> None:
    assert normal_phone(written) == libphonenumber_normal(written)


@settings(max_examples=3000, deadline=None)
@given(st.text("0123456789", min_size=0, max_size=13), st.sampled_from(["+31", "+32", "", "0"]))
def test_any_stored_number_is_judged_as_libphonenumber_would(digits: str, prefix: str) -> None:
    assert valid_phone(prefix + digits) == libphonenumber_valid(prefix + digits)
