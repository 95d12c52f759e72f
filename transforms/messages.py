"""Rendering of reminder messages (Jinja2, Dutch at B1 level first, English second).

Amounts and dates are formatted the Dutch way with babel. Every message carries the
amount, the payment reference, the payment link, how to reach a person and where to
find debt help. Pure: data in, text out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(enabled_extensions=("html",)),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

STEPS = (
    "pre_due_nudge",
    "friendly_reminder",
    "second_reminder",
    "service_offer",
    "arrangement_offer",
    "debt_help_referral",
    "wik_letter",
    "handover",
)

SUBJECTS = {
    "nl": {
        "pre_due_nudge": "Binnenkort betalen aan {creditor}",
        "friendly_reminder": "Herinnering: uw betaling aan {creditor}",
        "second_reminder": "Tweede herinnering van {creditor}",
        "service_offer": "Kies zelf wanneer u betaalt",
        "arrangement_offer": "Betalen lukt even niet? Wij denken mee",
        "debt_help_referral": "Hulp bij geldzorgen",
        "wik_letter": "Laatste herinnering: betaal binnen 14 dagen",
        "handover": "Uw dossier gaat naar een medewerker",
    },
    "en": {
        "pre_due_nudge": "Coming up: your payment to {creditor}",
        "friendly_reminder": "Reminder: your payment to {creditor}",
        "second_reminder": "Second reminder from {creditor}",
        "service_offer": "Choose when you pay",
        "arrangement_offer": "Can't pay right now? Let's find a way",
        "debt_help_referral": "Help with money worries",
        "wik_letter": "Final reminder: pay within 14 days",
        "handover": "Your case goes to a colleague",
    },
}


SMS_LINES = {
    "nl": {
        "pre_due_nudge": "binnenkort betalen: {amount}",
        "friendly_reminder": "herinnering, {amount} staat nog open",
        "second_reminder": "tweede herinnering, {amount} staat nog open",
        "service_offer": "kies zelf wanneer u betaalt",
        "arrangement_offer": "betalen lukt even niet? Wij denken mee",
        "debt_help_referral": "hulp bij geldzorgen, gratis en anoniem",
        "wik_letter": "u krijgt een brief over {amount}",
        "handover": "een medewerker neemt contact op",
    },
    "en": {
        "pre_due_nudge": "payment of {amount} due soon",
        "friendly_reminder": "reminder, {amount} is still open",
        "second_reminder": "second reminder, {amount} is still open",
        "service_offer": "choose when you pay",
        "arrangement_offer": "can't pay right now? Let's find a way",
        "debt_help_referral": "help with money worries, free and anonymous",
        "wik_letter": "a letter about {amount} is on its way",
        "handover": "a colleague will contact you",
    },
}


def sms_text(step: str, lang: str, data: dict[str, Any]) -> str:
    """The short text an SMS carries (two GSM-7 segments at most for a normal name):
    what it is about, the reference, the payment link and a number to call."""
    lang = lang if lang in SMS_LINES else "nl"
    amount = money(int(data["amount_cents"]), lang).replace("\xa0", " ")  # GSM-7 has no NBSP
    line = SMS_LINES[lang][step].format(amount=amount)
    ask = "Vragen" if lang == "nl" else "Questions"
    ref = "Kenmerk" if lang == "nl" else "Reference"
    return (
        f"{data['creditor_name']}: {line}. {ref} {data['reference']}. "
        f"{data['payment_link']} {ask}: {data['phone']}"
    )


@lru_cache(maxsize=8192)
def money(cents: int, lang: str = "nl") -> str:
    """An amount as the language writes it (``€ 1.234,56``). Cached: Babel's formatting
    was a third of rendering a day's messages, and a day's amounts repeat (rents)."""
    locale = "nl_NL" if lang == "nl" else "en_GB"
    return str(format_currency(Decimal(cents) / 100, "EUR", locale=locale))


def day(d: dt.date, lang: str = "nl") -> str:
    return str(format_date(d, format="long", locale="nl_NL" if lang == "nl" else "en_GB"))


def render(step: str, lang: str, data: dict[str, Any]) -> tuple[str, str]:
    """(subject, text body) for a step; ``data`` holds the ids, amounts and branding."""
    lang = lang if lang in SUBJECTS else "nl"
    if step not in SUBJECTS[lang]:
        raise ValueError(f"no template for step {step!r}")
    ctx = dict(data)
    ctx.setdefault("self_service_link", None)  # the personal page, when the creditor has one
    ctx["amount"] = money(int(data["amount_cents"]), lang)
    ctx["costs"] = money(int(data.get("costs_cents", 0)), lang)
    ctx["total"] = money(int(data["amount_cents"]) + int(data.get("costs_cents", 0)), lang)
    if data.get("deadline"):
        ctx["deadline_text"] = day(data["deadline"], lang)
    body = _ENV.get_template(f"{lang}/{step}.txt.j2").render(**ctx)
    subject = SUBJECTS[lang][step].format(creditor=data["creditor_name"])
    return subject, body.strip() + "\n"


__all__ = ["STEPS", "day", "money", "render", "sms_text"]
