"""Debt help, decided explainably: answer deadlines, who a message is about, the claims
overview for a Saldoverzoek, a decision on a Betaalvoorstel, the instalments of an
agreed scheme, and the statutory early signals (Wgs). Pure: frames in, values out.

DOMAIN.md ("The Schuldenknooppunt", "Statutory early signalling") is the source for the
rules: answer within 10 working days; a Saldoverzoek antwoord carries per claim the
client number, invoice number, debt type, date arisen, original claim, outstanding
principal, costs and interest; a Wgs signal needs the threshold and the four
preconditions (personal contact tried, help pointed to, written reminder sent, offer to
share details not refused).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from connectors.schuldenknooppunt.messages import ClaimLine, InMessage, Proposal
from transforms.contact_window import _nl_holidays

_NON_ALNUM = re.compile(r"[^0-9A-Z]")
_OCR = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "S": "5", "B": "8"})


# ------------------------------------------------------------------------- deadlines
def add_working_days(start: dt.date, days: int, extra_closed: Iterable[dt.date] = ()) -> dt.date:
    """``days`` working days after ``start``: no Saturdays, Sundays, Dutch public
    holidays (Liberation Day every year, Algemene termijnenwet) or ``extra_closed``."""
    extra = frozenset(extra_closed)
    d, left = start, days
    while left > 0:
        d += dt.timedelta(days=1)
        if d.weekday() < 5 and d not in _nl_holidays(d.year) and d not in extra:
            left -= 1
    return d


#: messages that owe an answer within the hub's deadline
ANSWER_OWED = frozenset(
    {"kennisgeving", "kennisgeving_publiek", "saldoverzoek", "betaalvoorstel", "heroverweging"}
)


# ------------------------------------------------------------------------ the debtor
@dataclass(frozen=True)
class Resolved:
    debtor_id: str | None
    how: str  # client_number | address | unknown | ambiguous
    note: str | None = None


def _norm(s: Any) -> str:
    return _NON_ALNUM.sub("", str(s).upper()) if s is not None and not pd.isna(s) else ""


class DebtorLookup:
    """A creditor's debtors indexed once per round (by id, and by normalised postcode),
    so resolving each message costs the same for 1,000 debtors as for 1,000,000."""

    def __init__(self, debtors: pd.DataFrame) -> None:
        self.frame = debtors.reset_index(drop=True)
        self.ids = frozenset(self.frame["debtor_id"].astype(str))
        self._by_postcode: dict[str, list[int]] | None = None

    @property
    def by_postcode(self) -> dict[str, list[int]]:
        """The rows at each normalised postcode, built when a message first needs it:
        most carry a client number (at 250k debtors, building it took 0.6 s a round)."""
        if self._by_postcode is None:
            index: dict[str, list[int]] = {}
            for row, postcode in enumerate(map(_norm, self.frame["postcode"].tolist())):
                index.setdefault(postcode, []).append(row)
            self._by_postcode = index
        return self._by_postcode

    def at_postcode(self, postcode: str) -> pd.DataFrame:
        rows = self.by_postcode.get(_norm(postcode))
        return self.frame.iloc[rows if rows is not None else []]


def resolve_debtor(msg: InMessage, debtors: pd.DataFrame | DebtorLookup) -> Resolved:
    """Who the message is about: the creditor's client number (KlantnummerSE) first;
    without it, postcode + house number, narrowed by name. Two candidates is review,
    never a guess. ``debtors``: debtor_id, name, postcode, street (or their lookup)."""
    lookup = debtors if isinstance(debtors, DebtorLookup) else DebtorLookup(debtors)
    if msg.client_number:
        if msg.client_number in lookup.ids:
            return Resolved(msg.client_number, "client_number")
        return Resolved(None, "unknown", f"client number {msg.client_number} unknown")
    if not (msg.postcode and msg.house_number):
        return Resolved(None, "unknown", "no client number and no postcode + house number")
    number = re.match(r"\d+", msg.house_number.strip())
    at = lookup.at_postcode(msg.postcode)
    if number:
        at = at[
            at["street"]
            .astype("string")
            .str.contains(rf"(?<!\d){number.group(0)}(?!\d)", regex=True, na=False)
        ]
    if msg.name and len(at) > 1:  # the best name only, and only when it clearly fits
        want = msg.name.lower()
        score = at["name"].map(
            lambda n: difflib.SequenceMatcher(None, want, str(n).lower()).ratio()
        )
        best = float(score.max())
        if best >= 0.85:
            at = at[score >= best - 0.02]
    if len(at) == 1:
        return Resolved(str(at["debtor_id"].iloc[0]), "address")
    if len(at) > 1:
        return Resolved(
            None,
            "ambiguous",
            f"{len(at)} debtors at that address: {', '.join(sorted(at['debtor_id'].astype(str)))}",
        )
    return Resolved(None, "unknown", "no debtor at that postcode and house number")


# ------------------------------------------------------------------ saldo overview
@dataclass
class SaldoAnswer:
    claims: list[ClaimLine]
    ambiguous: list[str] = field(default_factory=list)  # counsellor numbers fitting 2+ items
    not_found: list[str] = field(default_factory=list)  # counsellor numbers we do not know

    @property
    def needs_review(self) -> bool:
        return bool(self.ambiguous)

    @property
    def note(self) -> str | None:
        parts = []
        if self.not_found:
            parts.append(f"factuurnummer(s) {', '.join(self.not_found)} niet bekend als openstaand")
        if not self.claims:
            parts.append("geen openstaande vorderingen")
        return "; ".join(parts) or None


def saldo_answer(
    debtor_id: str, items: pd.DataFrame, counsellor_numbers: list[str], debt_type: str
) -> SaldoAnswer:
    """Every open claim of the debtor, with the counsellor's spelling of its number where
    they gave one. ``items``: invoice_id, invoice_date, amount_cents, open_cents,
    costs_cents, interest_cents (the debtor's invoices)."""
    mine = items[items["open_cents"] > 0].sort_values(["invoice_date", "invoice_id"])
    exact = {_norm(i): str(i) for i in mine["invoice_id"]}
    fuzzy: dict[str, list[str]] = {}
    for i in mine["invoice_id"]:
        fuzzy.setdefault(_norm(i).translate(_OCR), []).append(str(i))
    theirs: dict[str, str] = {}
    out = SaldoAnswer(claims=[])
    for number in counsellor_numbers:
        key = _norm(number)
        if key in exact:
            theirs[exact[key]] = number
            continue
        hits = fuzzy.get(key.translate(_OCR), [])
        # their number may be ours without a prefix or leading zeros ("12" for "F2026-0012")
        if not hits and key.isdigit():
            hits = [
                i for k, i in exact.items() if re.sub(r"^\D*0*", "", k).endswith(key.lstrip("0"))
            ]
            hits = [i for i in hits if key.lstrip("0")]
        if len(hits) == 1:
            theirs[hits[0]] = number
        elif len(hits) > 1:
            out.ambiguous.append(number)
        else:
            out.not_found.append(number)
    for r in mine.itertuples(index=False):
        costs, interest = int(r.costs_cents or 0), int(r.interest_cents or 0)
        out.claims.append(
            ClaimLine(
                client_number=debtor_id,
                invoice_number=str(r.invoice_id),
                debt_type=debt_type,
                arisen_on=r.invoice_date,
                original_cents=int(r.amount_cents),
                principal_cents=int(r.open_cents) - costs - interest,
                costs_cents=costs,
                interest_cents=interest,
                shv_invoice_number=theirs.get(str(r.invoice_id)),
            )
        )
    return out


# --------------------------------------------------------------------- proposals
@dataclass(frozen=True)
class ProposalPolicy:
    """When a Betaalvoorstel is accepted without a person: the offer reaches
    ``accept_min_percentage`` of the claims (NVVK-style schemes offer a percentage), or
    the total claim is at most ``accept_below_cents``; and the term is at most
    ``max_term_months``. Anything else goes to a person."""

    accept_min_percentage: float | None = None
    accept_below_cents: int | None = None
    max_term_months: int = 36


def decide_proposal(
    proposal: Proposal | None, total_open_cents: int, policy: ProposalPolicy
) -> tuple[bool | None, str]:
    """(True, why) to accept, (None, why) for a person; never an automatic rejection."""
    if proposal is None:
        return None, "Betaalvoorstel without an offer: for review"
    pct = proposal.percentage
    if pct is None and proposal.amount_cents is not None and total_open_cents > 0:
        pct = 100.0 * proposal.amount_cents / total_open_cents
    if proposal.term_months is not None and proposal.term_months > policy.max_term_months:
        return None, f"term {proposal.term_months} months exceeds {policy.max_term_months}"
    if policy.accept_below_cents is not None and total_open_cents <= policy.accept_below_cents:
        return True, f"claim {total_open_cents / 100:.2f} within the accept-below limit"
    if policy.accept_min_percentage is not None and pct is not None:
        if pct + 1e-9 >= policy.accept_min_percentage:
            return True, f"offer {pct:.1f}% meets {policy.accept_min_percentage:.1f}%"
        return None, f"offer {pct:.1f}% below {policy.accept_min_percentage:.1f}%: for review"
    return None, "no automatic acceptance rule applies: for review"


def instalments(
    total_open_cents: int, proposal: Proposal, fallback_start: dt.date
) -> list[dict[str, Any]]:
    """Monthly instalments of an agreed scheme: the offered amount (or percentage of the
    claims) over the term, equal parts, the rest in the last; same day each month."""
    term = max(proposal.term_months or 1, 1)
    if proposal.amount_cents is not None:
        total = proposal.amount_cents
    elif proposal.percentage is not None:
        total = round(total_open_cents * proposal.percentage / 100)
    else:
        total = total_open_cents
    start = proposal.first_payment or fallback_start
    part = total // term
    out = []
    for k in range(term):
        month = start.month - 1 + k
        year = start.year + month // 12
        day = min(start.day, 28)
        due = dt.date(year, month % 12 + 1, day)
        amount = part if k < term - 1 else total - part * (term - 1)
        out.append({"due_on": due.isoformat(), "amount_cents": amount})
    return out


def arrangement_status(
    plan: list[dict[str, Any]], paid_cents: int, today: dt.date, grace_days: int = 30
) -> str:
    """completed | broken | active. Broken: what was due more than ``grace_days`` ago
    (and at least one whole instalment) is not covered by what was paid."""
    total = sum(int(x["amount_cents"]) for x in plan)
    if paid_cents >= total:
        return "completed"
    cutoff = today - dt.timedelta(days=grace_days)
    overdue = [x for x in plan if dt.date.fromisoformat(x["due_on"]) <= cutoff]
    owed = sum(int(x["amount_cents"]) for x in overdue)
    if overdue and owed - paid_cents >= min(int(x["amount_cents"]) for x in overdue):
        return "broken"
    return "active"


# ------------------------------------------------------------------- early signals
@dataclass(frozen=True)
class WgsPolicy:
    """Thresholds of the national covenant (DOMAIN.md): from 30 days late for rent,
    energy and water; 30-100 days for health insurance. Configurable per creditor."""

    min_days_late: int = 30
    min_arrears_cents: int = 1
    repeat_after_days: int = 90
    personal_channels: tuple[str, ...] = ("sms", "email", "phone", "visit")
    written_channels: tuple[str, ...] = ("letter", "email")
    #: vangnet's messages always say where to find help and offer to share details
    #: (templates: debt_help line, Wgs sentence); a creditor whose own letters do not
    #: sets this false and the precondition needs a recorded contact of its own
    messages_point_to_help: bool = True


def wgs_candidates(
    today: dt.date,
    items: pd.DataFrame,
    contacts: pd.DataFrame,
    held: set[str],
    refused: set[str],
    earlier: pd.DataFrame,
    policy: WgsPolicy,
) -> pd.DataFrame:
    """Debtors to signal today, with why. ``items``: debtor_id, due_date, open_cents
    (open items); ``contacts``: debtor_id, channel, status (sent ones count);
    ``earlier``: debtor_id, signal_date, arrears_cents of previous signals."""
    cols = ["debtor_id", "arrears_cents", "arisen_on", "days_late", "preconditions"]
    if items.empty:
        return pd.DataFrame(columns=cols)
    # whole columns at a time: at 250k debtors / 1M open items a row-by-row walk over
    # the debtors in arrears took 7-12 s; only the survivors are built one by one
    day = pd.Timestamp(today)
    due = pd.to_datetime(items["due_date"])
    late = ((due < day) & (items["open_cents"] > 0)).to_numpy()
    if not late.any():
        return pd.DataFrame(columns=cols)
    per = (
        pd.DataFrame(
            {
                "debtor_id": items["debtor_id"].to_numpy()[late],
                "open_cents": items["open_cents"].to_numpy()[late],
                "due": due.to_numpy()[late],
            }
        )
        .groupby("debtor_id")
        .agg(arrears_cents=("open_cents", "sum"), arisen=("due", "min"))
    )
    per["days_late"] = (day - per["arisen"]).dt.days
    per = per[
        (per["days_late"] >= policy.min_days_late)
        & (per["arrears_cents"] >= policy.min_arrears_cents)
    ]
    sent = contacts[contacts["status"] == "sent"] if len(contacts) else contacts
    if not len(sent):
        return pd.DataFrame(columns=cols)  # no contact tried: no precondition holds

    def reached(channels: tuple[str, ...] | None) -> list[Any]:
        rows = sent if channels is None else sent[sent["channel"].isin(channels)]
        return list(set(rows["debtor_id"]))

    ids = per.index
    keep = (
        ~ids.isin(list(held))  # already in debt assistance: the municipality knows
        & ids.isin(reached(policy.personal_channels))
        & ids.isin(reached(policy.written_channels))
        & (ids.isin(reached(None)) if policy.messages_point_to_help else False)
        & ~ids.isin(list(refused))
    )
    per = per[keep]
    if len(earlier) and len(per):
        last = earlier.sort_values("signal_date").groupby("debtor_id").last()
        last = last[last.index.isin(per.index)]
        repeated = [
            debtor
            for debtor, signalled, arrears in zip(
                last.index, last["signal_date"], last["arrears_cents"], strict=True
            )
            if (today - signalled).days < policy.repeat_after_days
            and int(per.at[debtor, "arrears_cents"]) <= int(arrears)
        ]  # a repeated signal without new arrears
        per = per[~per.index.isin(repeated)]
    pre = {
        "personal_contact_tried": True,
        "help_pointed_to": True,
        "written_reminder_sent": True,
        "sharing_not_refused": True,
    }
    return pd.DataFrame(
        {
            "debtor_id": per.index.to_list(),
            "arrears_cents": [int(v) for v in per["arrears_cents"]],
            "arisen_on": [t.date() for t in per["arisen"]],
            "days_late": [int(v) for v in per["days_late"]],
            "preconditions": [dict(pre) for _ in range(len(per))],
        },
        columns=cols,
    )


__all__ = [
    "ANSWER_OWED",
    "ProposalPolicy",
    "Resolved",
    "SaldoAnswer",
    "WgsPolicy",
    "add_working_days",
    "arrangement_status",
    "decide_proposal",
    "instalments",
    "resolve_debtor",
    "saldo_answer",
    "wgs_candidates",
]
