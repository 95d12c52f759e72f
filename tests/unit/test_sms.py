from transforms.sms import is_gsm7, length, segments, to_gsm7


def test_gsm7_and_unicode_lengths_and_segments() -> None:
    assert length("Betaal € 12,50") == ("gsm7", 15)  # the euro sign counts twice
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert length("Şule") == ("unicode", 4) and segments("Ş" * 70) == 1 and segments("Ş" * 71) == 2
    assert segments("😀" * 35) == 1  # a surrogate pair counts as two UCS-2 units


def test_folding_keeps_a_foreign_name_in_gsm7() -> None:
    text = "Beste Şule Ağaoğlu, uw betaling…"
    assert not is_gsm7(text)
    folded = to_gsm7(text)
    assert is_gsm7(folded) and folded == "Beste Sule Agaoglu, uw betaling..."


def test_every_steps_sms_fits_two_segments() -> None:
    from transforms.messages import STEPS, sms_text

    data = {
        "amount_cents": 123456,
        "reference": "5000056789012345",
        "payment_link": "https://betalen.wooncorp.nl/5000056789012345?bedrag=1234.56",
        "phone": "088-1234567",
        "creditor_name": "Woonstichting De Vang",
    }
    for lang in ("nl", "en"):
        for step in STEPS:
            text = sms_text(step, lang, data)
            assert is_gsm7(text) and segments(text) <= 2, (lang, step, text)
            assert "5000056789012345" in text and "088-1234567" in text
