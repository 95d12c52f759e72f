import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.references import (
    is_valid_betalingskenmerk,
    is_valid_reference,
    new_betalingskenmerk,
    valid_references,
)


def test_domain_example_is_valid() -> None:
    assert is_valid_betalingskenmerk("5000056789012345")  # DOMAIN.md example


def test_wrong_check_digit_is_invalid() -> None:
    assert not is_valid_betalingskenmerk("6000056789012345")


def test_seven_digits_have_no_check_digit() -> None:
    assert is_valid_betalingskenmerk("1234567")


def test_lengths_outside_the_standard_are_invalid() -> None:
    assert not is_valid_betalingskenmerk("12345678901234567")
    assert not is_valid_betalingskenmerk("12345a7890123456")


def test_rf_references() -> None:
    assert is_valid_reference("RF18539007547034")
    assert not is_valid_reference("RF19539007547034")


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_new_references_always_validate(n: int) -> None:
    ref = new_betalingskenmerk(n)
    assert len(ref) == 16 and is_valid_betalingskenmerk(ref)


@given(
    st.integers(min_value=0, max_value=10**15 - 1),
    st.integers(min_value=1, max_value=15),
    st.integers(1, 9),
)
def test_a_changed_digit_is_detected(n: int, pos: int, delta: int) -> None:
    ref = new_betalingskenmerk(n)
    digits = list(ref)
    digits[pos] = str((int(digits[pos]) + delta) % 10)
    # the weights are coprime with 11, so one changed digit always changes A mod 11;
    # only the standard's "10 -> 1" rule folds two residues onto check digit 1
    if is_valid_betalingskenmerk("".join(digits)):
        assert ref[0] == "1"


def test_only_ascii_digits_make_a_betalingskenmerk() -> None:
    from transforms.references import is_valid_betalingskenmerk, new_betalingskenmerk

    good = new_betalingskenmerk(4711)
    assert is_valid_betalingskenmerk(good)
    arabic = good.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert not is_valid_betalingskenmerk(arabic)
    assert not is_valid_betalingskenmerk("²" * 16)
    with pytest.raises(ValueError):
        new_betalingskenmerk("٤٧١١")


@given(st.text(alphabet=st.sampled_from("0123456789RFrf .-\t\u00a0ßé٣"), max_size=24))
def test_compact_takes_out_whitespace_dots_and_dashes_only(ref: str) -> None:
    from transforms.references import compact

    out = compact(ref)
    assert out == "".join(ref.split()).replace(".", "").replace("-", "").upper()


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 10**16 - 1).map(lambda n: f"{n:016d}"),  # any 16 digits
            st.integers(0, 10**15 - 1).map(new_betalingskenmerk),
            st.text("0123456789 .-RFrf\u0661", max_size=18),
            st.none(),
            st.just(float("nan")),
        ),
        max_size=60,
    )
)
def test_references_checked_at_once_get_each_ones_verdict(values: list) -> None:
    """The 16-digit kenmerken as a matrix, the rest one by one: the same verdict for
    every value, in its place, as ``is_valid_reference`` gives it (missing passes)."""
    one = lambda v: True if v is None or v != v or v == "" else is_valid_reference(v)  # noqa: E731
    assert valid_references(values, one) == [one(v) for v in values]
