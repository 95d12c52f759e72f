"""Matching bank lines to open items (first version: the strong evidence).

Evidence used here, strongest first: a structured payment reference (betalingskenmerk or
RF) equal to an open item's reference, the same reference written in the remittance text,
the invoice number in the remittance text. Anything else is unmatched with a reason and
goes to the review list. A payment larger than the item leaves the rest as credit.
The fuzzy, IBAN-history, amount-subset and reversal rules come with the payments issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from transforms.references import compact, is_valid_reference

_DIGIT_RUN = re.compile(r"(?<!\d)(\d[\d .]{6,22}\d)(?!\d)")
_RF = re.compile(r"\bRF\d{2}[0-9A-Z]{1,21}\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/]{3,}")


@dataclass(frozen=True)
class MatchResult:
    allocations: pd.DataFrame  # payment_id, invoice_id, amount_cents, rule
    payments: pd.DataFrame  # payment_id, status, allocated_cents, unmatched_reason
    invoices: pd.DataFrame  # invoice_id, open_cents (new), status


def references_in_text(text: str | None) -> list[str]:
    """Valid payment references written anywhere in a free remittance text."""
    if not isinstance(text, str) or not text:
        return []
    found = [compact(m) for m in _RF.findall(text)]
    for m in _DIGIT_RUN.findall(text):
        c = compact(m)
        if len(c) in (16, 7) or 9 <= len(c) <= 14:
            found.append(c)
    return [r for r in found if is_valid_reference(r)]


def match_payments(payments: pd.DataFrame, open_items: pd.DataFrame) -> MatchResult:
    """Allocate credit payments to open items; pure, deterministic, order-stable.

    ``payments``: PAYMENT_COLUMNS; ``open_items``: invoice_id, debtor_id, open_cents,
    payment_reference, due_date.
    """
    by_ref: dict[str, str] = {}
    by_number: dict[str, str] = {}
    open_cents: dict[str, int] = {}
    for inv in open_items.itertuples(index=False):
        open_cents[inv.invoice_id] = int(inv.open_cents)
        if isinstance(inv.payment_reference, str) and inv.payment_reference:
            by_ref[compact(inv.payment_reference)] = inv.invoice_id
        by_number[str(inv.invoice_id).upper()] = inv.invoice_id
    start_open = dict(open_cents)

    allocs: list[dict[str, object]] = []
    outcomes: list[dict[str, object]] = []
    ordered = payments.sort_values(["booking_date", "payment_id"], kind="stable")
    for p in ordered.itertuples(index=False):
        amount = int(p.amount_cents)
        if p.reversal:
            outcomes.append(_out(p.payment_id, "unmatched", 0, "reversal: needs review"))
            continue
        if amount <= 0:
            outcomes.append(_out(p.payment_id, "ignored", 0, "debit entry, not a debtor payment"))
            continue
        invoice_id, rule = None, None
        if isinstance(p.structured_reference, str) and p.structured_reference:
            invoice_id = by_ref.get(compact(p.structured_reference))
            rule = "structured_reference" if invoice_id else None
        if invoice_id is None:
            for ref in references_in_text(p.remittance):
                if ref in by_ref:
                    invoice_id, rule = by_ref[ref], "reference_in_text"
                    break
        if invoice_id is None and isinstance(p.remittance, str):
            hits = {
                by_number[t.upper()] for t in _TOKEN.findall(p.remittance) if t.upper() in by_number
            }
            if len(hits) == 1:
                invoice_id, rule = hits.pop(), "invoice_number_in_text"
            elif len(hits) > 1:
                outcomes.append(
                    _out(p.payment_id, "unmatched", 0, "names several invoices: review")
                )
                continue
        if invoice_id is None:
            outcomes.append(
                _out(p.payment_id, "unmatched", 0, "no reference or invoice number found")
            )
            continue
        take = min(amount, open_cents[invoice_id])
        if take > 0:
            open_cents[invoice_id] -= take
            allocs.append(
                {
                    "payment_id": p.payment_id,
                    "invoice_id": invoice_id,
                    "amount_cents": take,
                    "rule": rule,
                }
            )
        status = "matched" if take == amount else ("overpaid" if take > 0 else "unmatched")
        reason = None
        if take == 0:
            reason = f"item {invoice_id} already settled: credit kept"
        elif take < amount:
            reason = f"overpayment of {amount - take} cents kept as credit"
        outcomes.append(_out(p.payment_id, status, take, reason))

    changed = [i for i, v in open_cents.items() if v != start_open[i]]
    inv = pd.DataFrame(
        {
            "invoice_id": changed,
            "open_cents": [open_cents[i] for i in changed],
            "status": ["paid" if open_cents[i] == 0 else "partial" for i in changed],
        }
    )
    return MatchResult(
        allocations=pd.DataFrame(
            allocs, columns=["payment_id", "invoice_id", "amount_cents", "rule"]
        ),
        payments=pd.DataFrame(
            outcomes, columns=["payment_id", "status", "allocated_cents", "unmatched_reason"]
        ),
        invoices=inv,
    )


def _out(pid: str, status: str, allocated: int, reason: str | None) -> dict[str, object]:
    return {
        "payment_id": pid,
        "status": status,
        "allocated_cents": allocated,
        "unmatched_reason": reason,
    }


__all__ = ["MatchResult", "match_payments", "references_in_text"]
