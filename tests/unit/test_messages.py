"""Templates stay near B1: short sentences, few long words, every required element."""

import datetime as dt
import re

import pytest

from transforms.messages import STEPS, render

DATA = {
    "name": "A. Jansen",
    "amount_cents": 123456,
    "costs_cents": 18518,
    "deadline": dt.date(2026, 12, 9),
    "reference": "5000056789012345",
    "payment_link": "https://pay.example/?r=5000056789012345",
    "phone": "088 123 45 67",
    "email": "incasso@example.nl",
    "debt_help": "Geldfit: 0800-8115.",
    "creditor_name": "Woonstichting",
}


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("step", STEPS)
def test_every_message_carries_what_the_debtor_needs(step: str, lang: str) -> None:
    subject, body = render(step, lang, DATA)
    assert subject and "5000056789012345" in body and DATA["payment_link"] in body
    assert DATA["phone"] in body and "Geldfit" in body
    assert ("1.234,56" if lang == "nl" else "1,234.56") in body


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("step", STEPS)
def test_readability_near_b1(step: str, lang: str) -> None:
    _, body = render(step, lang, DATA)
    prose = "\n".join(line for line in body.splitlines() if "http" not in line and "@" not in line)
    sentences = [s for s in re.split(r"[.!?]\s+|\n", prose) if s.strip()]
    words = re.findall(r"[A-Za-zÀ-ÿ]+", prose)
    assert max(len(s.split()) for s in sentences) <= 20, "a sentence longer than 20 words"
    assert sum(len(w) for w in words) / len(words) < 6.0, "words too long on average"
    assert sum(len(w) > 13 for w in words) <= 2, "too many very long words"


def test_the_wik_letter_states_costs_and_the_safe_wording() -> None:
    _, body = render("wik_letter", "nl", DATA)
    assert "binnen veertien dagen vanaf de dag nadat deze brief bij u is bezorgd" in body
    assert "€\xa0185,18" in body and "9 december 2026" in body  # babel keeps € and amount together
