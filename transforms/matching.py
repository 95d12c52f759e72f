"""Matching bank lines to open items, explainably.

Evidence, strongest first (each gives a score for an item or a debtor):

===========================  =====  ==========================================
structured reference         1.00   betalingskenmerk / RF equal to an item's
reference in the text        0.97   the same, written in the remittance
invoice number in the text   0.95   exact token; 0.85 when only OCR-ish noise differs
end-to-end id                0.95   a direct debit returning our invoice number/reference
debtor number in the text    0.90   the debtor's own number
payer IBAN seen before       0.75   the debtor's IBAN, or one that paid them before
name similarity              0.60   payer name ~ debtor name (difflib >= 0.85); +0.05 on
                                    top of other evidence for the same debtor
amount equals                +0.15  one open item of that debtor, or a sum of them
===========================  =====  ==========================================

A payment is allocated automatically only when its best candidate reaches
``threshold`` with ``margin`` over the runner-up; otherwise it goes to review with the
candidates as suggestions. Items the payer named are paid first, in the order named;
money on a debtor-level match goes oldest item first; what is left is credit. A
reversal or return (RvslInd, RC/RD, a return reason) undoes the allocations of the
payment it reverses (found by end-to-end id, else bank reference and amount): negative
allocations that reopen the items.

Within the money an item receives, the components are paid in ``allocation_order``: by
default costs, then interest, then principal, as art. 6:44 BW prescribes (DOMAIN.md,
WIK). A creditor whose social policy pays principal first configures that. With
``allocation_scope="debtor"`` the order runs over all items of the payment first (every
item's costs, then every item's interest, then principal oldest first). Each allocation
records its split, so a reversal restores exactly the components it took.

Pure: frames in, frames out; deterministic for the same input.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from ledger.records import PAYMENT_COLUMNS, tuples
from transforms.references import compact, is_valid_reference

_DIGIT_RUN = re.compile(r"(?<!\d)(\d[\d .]{6,22}\d)(?!\d)")
_RF = re.compile(r"\bRF\d{2}[0-9A-Z]{1,21}\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/.]{3,}")
#: the characters OCR confuses with digits, read as those digits
_CONFUSED = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "I": "1",
    "L": "1",
    "|": "1",
    "S": "5",
    "B": "8",
    "Z": "2",
}
_OCR = str.maketrans(_CONFUSED)


Component = Literal["costs", "interest", "principal"]
COMPONENTS: tuple[Component, ...] = ("costs", "interest", "principal")
#: art. 6:44 BW: a payment goes to costs first, then interest, then the principal
STATUTORY_ORDER: tuple[Component, ...] = COMPONENTS


@dataclass(frozen=True)
class MatchPolicy:
    threshold: float = 0.80
    margin: float = 0.10
    subset_max_items: int = 12  # bounded subset-sum search over one debtor's items
    allocation_order: tuple[str, ...] = STATUTORY_ORDER
    allocation_scope: str = "item"  # "item": per item in order; "debtor": per component

    def __post_init__(self) -> None:
        if sorted(self.allocation_order) != sorted(COMPONENTS):
            raise ValueError(
                f"allocation_order must name each of {', '.join(COMPONENTS)} once,"
                f" got {list(self.allocation_order)}"
            )
        if self.allocation_scope not in ("item", "debtor"):
            raise ValueError(
                f"allocation_scope must be 'item' or 'debtor', got {self.allocation_scope!r}"
            )


@dataclass(frozen=True)
class MatchResult:
    #: payment_id, invoice_id, amount_cents (negative undoes), rule, and the split of
    #: amount_cents over costs_cents, interest_cents and principal_cents
    allocations: pd.DataFrame
    payments: pd.DataFrame  # payment_id, status, allocated_cents, unmatched_reason, suggestions
    invoices: pd.DataFrame  # invoice_id, open_cents, costs_cents, interest_cents (new), status
    #: lines weighed again because a later allocation changed what they were weighed
    #: against, over how many passes after the first
    weighed_again: int = 0
    passes: int = 0


ALLOCATION_COLUMNS = (
    "payment_id",
    "invoice_id",
    "amount_cents",
    "rule",
    "costs_cents",
    "interest_cents",
    "principal_cents",
)


@dataclass
class _Cand:
    debtor: str
    items: list[str] = field(default_factory=list)  # named items, in order
    score: float = 0.0
    rules: list[str] = field(default_factory=list)

    def add(self, score: float, rule: str, item: str | None = None) -> None:
        self.score = max(self.score, score)
        if rule not in self.rules:
            self.rules.append(rule)
        if item and item not in self.items:
            self.items.append(item)


class _Past(NamedTuple):
    """An allocation of this run, as a later run's history would hold it (the item is
    in the index, so the item_* columns of the ledger's history are not needed)."""

    payment_id: str
    invoice_id: str
    debtor_id: str
    amount_cents: int
    costs_cents: int
    interest_cents: int
    payment_amount_cents: int


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


_NOT_OCR = re.compile(r"[^0-9A-Z]")
#: the same two steps on ASCII bytes, in one C call: what is not 0-9 or A-Z deleted,
#: then the OCR confusions mapped
_NOT_OCR_BYTES = bytes(c for c in range(256) if not (48 <= c <= 57 or 65 <= c <= 90))
_OCR_BYTES = bytes.maketrans(
    "".join(_CONFUSED).encode(), "".join(_CONFUSED.values()).encode()
)  # "|" too, though deleted first: the same table as _OCR


def _ocr_key(token: str) -> str:
    """A token upper-cased, with only 0-9 and A-Z kept and the letters OCR confuses with
    digits read as those digits: an invoice number as a noisy remittance may write it."""
    up = token.upper()
    if up.isascii():  # nearly always; the indexing of a day's million items calls this
        return up.encode().translate(_OCR_BYTES, _NOT_OCR_BYTES).decode()
    return _NOT_OCR.sub("", up).translate(_OCR)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def match_payments(
    payments: pd.DataFrame,
    open_items: pd.DataFrame,
    debtors: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    policy: MatchPolicy | None = None,
    history_from: dt.date | None = None,
) -> MatchResult:
    """Allocate payments to items.

    ``payments``: PAYMENT_COLUMNS. ``open_items``: invoice_id, debtor_id, open_cents,
    payment_reference, due_date, and optionally costs_cents and interest_cents (the parts
    of open_cents that are costs and interest). ``debtors`` (optional): debtor_id, name,
    iban. ``history`` (optional): earlier allocations with
    payment_id, invoice_id, debtor_id, amount_cents, end_to_end_id, bank_reference,
    counterparty_iban, payment_amount_cents and optionally their costs_cents/
    interest_cents split and the item's current item_open_cents/item_costs_cents/
    item_interest_cents; ``history_from``: the first booking date it holds.

    The run's own allocations count as history as they are made, and a payment nothing
    fitted is weighed again when a later allocation changed what it was weighed against,
    until nothing changes. So a second run over the ledger this one leaves (nothing new)
    changes nothing, and where a day's lines are split between runs matters as little
    as it can: only through the booking order, which decides who is paid first.
    """
    policy = policy or MatchPolicy()
    items = open_items.sort_values(["due_date", "invoice_id"], kind="stable")
    open_cents: dict[str, int] = {}
    item_debtor: dict[str, str] = {}
    by_ref: dict[str, str] = {}
    by_number: dict[str, str] = {}
    by_ocr: dict[str, tuple[str, ...]] = {}
    debtor_items: dict[str, list[str]] = defaultdict(list)
    ids = items["invoice_id"].astype(str).tolist()
    owners = items["debtor_id"].astype(str).tolist()
    open_cents.update(zip(ids, (int(c) for c in items["open_cents"].tolist()), strict=True))
    # the components of what is open (an item passed settled has none: a reversal that
    # reopens it starts from the ledger's figures, as for an item not passed at all)
    parts = _Parts(
        dict(open_cents),
        {i: c for i, c in zip(ids, _ints(items, "costs_cents"), strict=True) if c},
        {i: n for i, n in zip(ids, _ints(items, "interest_cents"), strict=True) if n},
    )
    item_debtor.update(zip(ids, owners, strict=True))
    for inv_id, owner in zip(ids, owners, strict=True):
        debtor_items[owner].append(inv_id)
    # an item is evidence while something is open on it: the index holds the
    # references, numbers and OCR keys of the items open at the start, and a lookup
    # skips one settled since (found again if a reversal reopens it), so a second
    # payment naming a settled item is weighed as one naming nothing, as in a later run
    refs = items["payment_reference"].tolist()
    indexed = [i for i in ids if open_cents[i] > 0]
    by_ref.update(
        (compact(ref), inv_id)
        for inv_id, ref in zip(ids, refs, strict=True)
        if _str(ref) and open_cents[inv_id] > 0
    )
    by_number.update((i.upper(), i) for i in indexed)
    # an item's OCR key: a tuple of the items that share it (nearly always one: a
    # million one-item sets had been 2.8 s and about 200 MB of the run)
    get = by_ocr.get
    for key, inv_id in zip(map(_ocr_key, indexed), indexed, strict=True):
        if len(key) >= 5:
            by_ocr[key] = get(key, ()) + (inv_id,)
    ref_of: dict[str, Any] = {}  # filled when first needed
    # the items sharing an OCR key with another (a fuzzy match needs it to name one)
    shared_ocr = {i: k for k, group in by_ocr.items() if len(group) > 1 for i in group}
    start_open = parts.start

    names = NameIndex()
    iban_debtors: dict[str, set[str]] = defaultdict(set)
    debtor_numbers: dict[str, str] = {}
    if debtors is not None:
        for d in tuples(debtors):
            did = str(d.debtor_id)
            debtor_numbers[did.upper()] = did
            if _str(getattr(d, "name", None)):
                names[did] = str(d.name).lower()
            if _str(getattr(d, "iban", None)):
                iban_debtors[compact(d.iban)].add(did)
    by_e2e: dict[str, list[Any]] = defaultdict(list)
    by_bankref: dict[str, list[Any]] = defaultdict(list)
    reopen_item: dict[str, int] = {}
    if history is not None and len(history):
        for h in tuples(history):
            if _str(h.counterparty_iban):
                iban_debtors[compact(h.counterparty_iban)].add(str(h.debtor_id))
            if _str(h.end_to_end_id):
                by_e2e[h.end_to_end_id].append(h)
            if _str(h.bank_reference):
                by_bankref[h.bank_reference].append(h)

    def ranked_for(p: Any, amount: int, enough: float | None) -> list[_Cand]:
        """The candidate debtors for a payment, best first (``enough``: see _candidates)."""
        cands = _candidates(
            p,
            by_ref,
            by_number,
            by_ocr,
            item_debtor,
            debtor_numbers,
            iban_debtors,
            names,
            enough,
            open_cents,
        )
        for c in cands.values():  # amount evidence within a candidate debtor
            if _amount_fits(
                amount,
                [open_cents[i] for i in debtor_items.get(c.debtor, []) if open_cents[i] > 0],
                policy.subset_max_items,
            ):
                c.add(min(c.score + 0.15, 0.99) if c.score else 0.0, "amount")
        return sorted(cands.values(), key=lambda c: (-c.score, c.debtor))

    allocs: list[dict[str, Any]] = []
    outcome: dict[str, dict[str, Any]] = {}
    # what a payment nothing fitted was weighed against, to evaluate it again when that
    # changes later in the run: (the change count when it was evaluated, the debtors it
    # weighed), with the payment and its place in the order. A change is an allocation
    # or reopening on a debtor's items (also when an item drops out of the lookups: a
    # payment that found it weighed its debtor), a payer IBAN newly linked to a debtor,
    # a new end-to-end id or bank reference to reverse, or a key that starts to
    # resolve: a reopened item's, an OCR key left with one open item (rare: then the
    # payments waiting since have their lookups compared)
    waiting: dict[str, tuple[int, set[str], Any, int]] = {}
    changes = 0
    debtor_changed: dict[str, int] = {}
    iban_changed: dict[str, int] = {}
    e2e_changed: dict[str, int] = {}
    bank_changed: dict[str, int] = {}
    key_resolves: dict[str, int] = {}  # index_keys(...) -> when
    resolved_at = -1  # the last of key_resolves

    def changed_debtor(d: str) -> None:
        debtor_changed[d] = changes

    def settled_or_reopened(inv: str) -> None:
        """An item settled or reopened: it drops out of the lookups or is found again
        (``_candidates`` finds only items with something open). A reopened item's keys
        resolve again, and so does an OCR key now left with one open item."""
        nonlocal resolved_at
        if start_open.get(inv, 0) <= 0:
            return  # not in the index at the start (settled): it stays out
        if open_cents[inv] > 0:
            if not ref_of:  # rare: a reversal reopened an item settled in this run
                ref_of.update(zip(ids, refs, strict=True))
            ref, key = ref_of[inv], _ocr_key(inv)
            keys = [f"num:{inv.upper()}"]
            keys += [f"ref:{compact(ref)}"] if _str(ref) else []
            keys += [f"ocr:{key}"] if len(key) >= 5 else []
            for k in keys:
                key_resolves[k] = changes
            resolved_at = changes
        elif inv in shared_ocr and _open_count(by_ocr[shared_ocr[inv]], open_cents) == 1:
            # the fuzzy key it shared now names one open item
            key_resolves[f"ocr:{shared_ocr[inv]}"] = resolved_at = changes

    def remember(p: Any, per_item: dict[str, dict[str, Any]]) -> None:
        """This run's allocations as the history of the next run will hold them: the
        payer IBAN linked to the debtor, the end-to-end id and bank reference to reverse."""
        if history_from is not None and p.booking_date < history_from:
            return  # outside the history a later run reads
        iban = compact(p.counterparty_iban) if _str(p.counterparty_iban) else None
        e2e, bank = _str(p.end_to_end_id), _str(p.bank_reference)
        for inv, a in per_item.items():
            debtor = item_debtor[inv]
            if iban and debtor not in iban_debtors[iban]:
                iban_debtors[iban].add(debtor)
                iban_changed[iban] = changes
            if not (e2e or bank):
                continue
            past = _Past(
                p.payment_id,
                inv,
                debtor,
                a["amount_cents"],
                a["costs_cents"],
                a["interest_cents"],
                int(p.amount_cents),
            )
            if e2e:
                by_e2e[e2e].append(past)
                e2e_changed[e2e] = changes
            if bank:
                by_bankref[bank].append(past)
                bank_changed[bank] = changes

    def stale(p: Any) -> bool:
        """Something the payment was weighed against changed after it was."""
        seen, weighed, _, _ = waiting[p.payment_id]
        if any(debtor_changed.get(d, -1) >= seen for d in weighed):
            return True
        if _str(p.counterparty_iban) and iban_changed.get(compact(p.counterparty_iban), -1) >= seen:
            return True
        if _str(p.end_to_end_id) and e2e_changed.get(p.end_to_end_id, -1) >= seen:
            return True
        if _str(p.bank_reference) and bank_changed.get(p.bank_reference, -1) >= seen:
            return True
        return resolved_at >= seen and any(
            key_resolves.get(k, -1) >= seen for k in index_keys(lookups(p))
        )

    def evaluate(p: Any, at: int) -> None:
        nonlocal changes
        pid = p.payment_id
        waiting.pop(pid, None)
        amount = int(p.amount_cents)
        if bool(p.reversal) or _str(getattr(p, "return_reason", None)):
            before = len(allocs)
            out = _reverse(p, amount, by_e2e, by_bankref, allocs, open_cents, parts, reopen_item)
            outcome[pid] = out
            if len(allocs) > before:
                changes += 1
                for a in allocs[before:]:
                    # an item outside the index (settled long ago) reopens for a later
                    # run: no payment of this run was weighed against it
                    if a["invoice_id"] in item_debtor:
                        changed_debtor(item_debtor[a["invoice_id"]])
                    settled_or_reopened(a["invoice_id"])
            else:
                waiting[pid] = (changes + 1, set(), p, at)
            return
        if amount <= 0:
            outcome[pid] = _out(pid, "ignored", 0, "debit entry, not a debtor payment")
            return
        ranked = ranked_for(p, amount, policy.threshold)
        suggestions = _suggestions(ranked)
        if not ranked or ranked[0].score < policy.threshold:
            why = (
                "no reference, number or known payer found"
                if not ranked
                else (
                    f"best evidence {ranked[0].score:.2f} ({', '.join(ranked[0].rules)})"
                    f" below {policy.threshold:.2f}"
                )
            )
            outcome[pid] = _out(pid, "unmatched", 0, why, suggestions)
            waiting[pid] = (changes + 1, {c.debtor for c in ranked}, p, at)
            return
        if len(ranked) > 1 and ranked[0].score - ranked[1].score < policy.margin:
            outcome[pid] = _out(
                pid,
                "unmatched",
                0,
                f"two debtors fit ({ranked[0].debtor}, {ranked[1].debtor}): review",
                suggestions,
            )
            waiting[pid] = (changes + 1, {c.debtor for c in ranked}, p, at)
            return
        best = ranked[0]
        rule = best.rules[0]
        left = amount
        # named items first, in the order named; then (debtor-level evidence) oldest first
        order = list(best.items)
        if not best.items or rule in ("debtor_number", "payer_iban", "name"):
            order += [i for i in debtor_items.get(best.debtor, []) if i not in order]
        if policy.allocation_scope == "debtor":
            slots = [(inv, comp) for comp in policy.allocation_order for inv in order]
        else:
            slots = [(inv, comp) for inv in order for comp in policy.allocation_order]
        per_item: dict[str, dict[str, Any]] = {}
        for inv, comp in slots:
            if left == 0:
                break
            comps = parts.of(inv)
            if comps is None:
                continue  # settled before the run: nothing to take
            take = min(left, comps[comp])
            if take <= 0:
                continue
            comps[comp] -= take
            open_cents[inv] -= take
            left -= take
            a = per_item.setdefault(inv, _alloc(pid, inv, rule))
            a["amount_cents"] += take
            a[f"{comp}_cents"] += take
        taken = amount - left
        if taken == 0:
            # with every name compared (ranked_for skipped them: it matched)
            every = ranked_for(p, amount, None)
            outcome[pid] = _out(
                pid,
                "unmatched",
                0,
                f"{', '.join(best.items) or best.debtor} already settled: credit kept",
                _suggestions(every),
            )
            waiting[pid] = (changes + 1, {c.debtor for c in ranked + every}, p, at)
            return
        changes += 1
        changed_debtor(best.debtor)
        for inv in per_item:
            if open_cents[inv] == 0:
                settled_or_reopened(inv)
        allocs.extend(per_item.values())
        remember(p, per_item)
        if left:
            outcome[pid] = _out(
                pid, "overpaid", taken, f"overpayment of {left} cents kept as credit"
            )
        else:
            outcome[pid] = _out(pid, "matched", taken, None)

    ordered = payments.sort_values(["booking_date", "payment_id"], kind="stable")
    for at, p in enumerate(tuples(ordered)):
        evaluate(p, at)

    # a payment weighed before a later one changed what it was weighed against is
    # weighed again, in the same order, until nothing changes: the outcome is then the
    # same as a second run over the same ledger would give (it changes nothing)
    def due() -> list[tuple[int, Any]]:
        return sorted((at, p) for _, _, p, at in waiting.values() if stale(p))

    again = due()
    weighed_again = passes = 0
    while again:
        passes += 1
        weighed_again += len(again)
        for at, p in again:
            evaluate(p, at)
        again = due()
    outcomes = list(outcome.values())  # in the order first weighed

    changed = [i for i, v in open_cents.items() if v != start_open.get(i, v)] + list(reopen_item)
    changed = list(dict.fromkeys(changed))
    inv = pd.DataFrame(
        {
            "invoice_id": changed,
            "open_cents": [open_cents.get(i, reopen_item.get(i, 0)) for i in changed],
            "costs_cents": [parts[i]["costs"] if i in parts else 0 for i in changed],
            "interest_cents": [parts[i]["interest"] if i in parts else 0 for i in changed],
        }
    )
    inv["status"] = ["paid" if o == 0 else "partial" for o in inv["open_cents"]] if len(inv) else []
    return MatchResult(
        allocations=pd.DataFrame(allocs, columns=list(ALLOCATION_COLUMNS)),
        payments=pd.DataFrame(
            outcomes,
            columns=["payment_id", "status", "allocated_cents", "unmatched_reason", "suggestions"],
        ),
        invoices=inv,
        weighed_again=weighed_again,
        passes=passes,
    )


def _suggestions(ranked: list[_Cand]) -> list[dict[str, Any]]:
    return [
        {
            "debtor_id": c.debtor,
            "invoice_ids": c.items,
            "score": round(c.score, 2),
            "rules": c.rules,
        }
        for c in ranked[:3]
    ]


class Lookups(NamedTuple):
    """What a payment looks up in the index of open items."""

    e2e: tuple[str, str] | None  # its end-to-end id as an invoice number, as a reference
    structured: str | None  # the structured reference, compacted
    text_refs: list[str]  # valid references written in the remittance
    tokens: list[tuple[str, str]]  # the remittance's words, upper-cased, with their OCR key


def lookups(p: Any) -> Lookups:
    text = _str(p.remittance) or ""
    e2e = _str(p.end_to_end_id)
    sref = _str(p.structured_reference)
    tokens = []
    for tok in _TOKEN.findall(text):
        up = tok.upper().strip(".,/")
        tokens.append((up, _ocr_key(up)))
    return Lookups(
        (e2e.upper(), compact(e2e)) if e2e else None,
        compact(sref) if sref else None,
        references_in_text(text),
        tokens,
    )


def _open_count(group: tuple[str, ...], open_cents: dict[str, int]) -> int:
    return sum(1 for i in group if open_cents[i] > 0)


def index_keys(look: Lookups) -> list[str]:
    """The index keys a payment's lookups read ("ref:", "num:", "ocr:" + the key)."""
    keys = [f"ref:{r}" for r in look.text_refs]
    if look.e2e:
        keys += [f"num:{look.e2e[0]}", f"ref:{look.e2e[1]}"]
    if look.structured:
        keys.append(f"ref:{look.structured}")
    for up, key in look.tokens:
        keys.append(f"num:{up}")
        if len(key) >= 5:
            keys.append(f"ocr:{key}")
    return keys


def _candidates(
    p: Any,
    by_ref: dict[str, str],
    by_number: dict[str, str],
    by_ocr: dict[str, tuple[str, ...]],
    item_debtor: dict[str, str],
    debtor_numbers: dict[str, str],
    iban_debtors: dict[str, set[str]],
    names: NameIndex,
    enough: float | None,
    open_cents: dict[str, int],
) -> dict[str, _Cand]:
    """The debtors a payment's evidence points at, each with its score and rules. With
    ``enough``, a single debtor already scoring that much is not compared by name. The
    index holds the items open at the start; one settled since is not found."""
    cands: dict[str, _Cand] = {}

    def cand(debtor: str) -> _Cand:
        got = cands.get(debtor)
        if got is None:  # not setdefault: that builds a _Cand each time
            got = cands[debtor] = _Cand(debtor)
        return got

    def live(inv: str | None) -> str | None:
        return inv if inv is not None and open_cents[inv] > 0 else None

    look = lookups(p)
    if look.e2e:  # a direct debit carries our own id back: an invoice number or reference
        hit = live(by_number.get(look.e2e[0])) or live(by_ref.get(look.e2e[1]))
        if hit:
            cand(item_debtor[hit]).add(0.95, "end_to_end_id", hit)
    if look.structured:
        inv = live(by_ref.get(look.structured))
        if inv:
            cand(item_debtor[inv]).add(1.0, "structured_reference", inv)
    for ref in look.text_refs:
        inv = live(by_ref.get(ref))
        if inv:
            cand(item_debtor[inv]).add(0.97, "reference_in_text", inv)
    for up, key in look.tokens:
        inv = live(by_number.get(up))
        if inv:
            cand(item_debtor[inv]).add(0.95, "invoice_number_in_text", inv)
        elif len(key) >= 5 and key in by_ocr and _open_count(by_ocr[key], open_cents) == 1:
            inv = next(i for i in by_ocr[key] if open_cents[i] > 0)
            cand(item_debtor[inv]).add(0.85, "invoice_number_fuzzy", inv)
        if up in debtor_numbers:
            cand(debtor_numbers[up]).add(0.90, "debtor_number")
    if _str(p.counterparty_iban):
        for d in iban_debtors.get(compact(p.counterparty_iban), ()):
            cand(d).add(0.75, "payer_iban")
    if enough is not None and len(cands) == 1 and next(iter(cands.values())).score >= enough:
        # one debtor, already over the threshold: a name corroborating it (+0.05) can
        # change neither that it matches nor how (scores only rise, and the rule is the
        # first one found); only the suggestions of a payment that finds its items
        # already settled show the name, and those are drawn again with enough=None
        return cands
    if _str(p.counterparty_name) and names:
        payer = str(p.counterparty_name).lower()
        for d in list(cands) or []:
            if d in names and similar(payer, names[d]):
                cands[d].add(min(cands[d].score + 0.05, 0.99), "name")  # corroborates
        if not cands:  # name alone is weak evidence: a suggestion, rarely enough on its own
            for d in names.alike(payer):
                cand(d).add(0.60, "name")
    return cands


NAME_SIMILARITY = 0.85


def similar(a: str, b: str, at_least: float = NAME_SIMILARITY) -> bool:
    """``difflib.SequenceMatcher(None, a, b).ratio() >= at_least``, with its two cheap
    upper bounds tried first (the lengths alone, then the multiset of characters): most
    pairs fail on those, and the verdict is the same."""
    la, lb = len(a), len(b)
    if not la + lb:
        return at_least <= 1.0  # difflib: two empty strings are alike (ratio 1.0)
    if 2.0 * min(la, lb) / (la + lb) < at_least:
        return False
    # quick_ratio's bound, from character counts kept per text: a payer is weighed
    # against each debtor sharing a word, a debtor's name against many payers, and
    # building a SequenceMatcher to count them took 9 us a pair (1 us this way)
    ca, cb = _char_counts(a), _char_counts(b)
    if len(ca) > len(cb):
        ca, cb = cb, ca
    get = cb.get
    shared = 0
    for c, n in ca.items():
        k = get(c)
        if k:
            shared += n if n < k else k
    if 2.0 * shared / (la + lb) < at_least:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= at_least


@lru_cache(maxsize=2**15)
def _char_counts(text: str) -> dict[str, int]:
    return Counter(text)


_WORD = re.compile(r"[^\W\d_]{3,}")


class NameIndex(dict[str, str]):
    """Debtor id -> lower-cased name, with the debtors indexed by each word of their name,
    so a payer known only by name is compared with the debtors sharing a word with it,
    not with every debtor (that was quadratic: 37k unknown payers x 125k debtors).
    Words many debtors share ("van", "jansen") are skipped; a payer whose every word is
    misspelled is not suggested by name at all (name alone was only ever a suggestion)."""

    COMMON = 1000  # a word in more names than this does not narrow anything down

    def __init__(self) -> None:
        super().__init__()
        self._by_word: dict[str, list[str]] = defaultdict(list)
        self._alike: dict[str, list[str]] = {}

    def __setitem__(self, debtor: str, name: str) -> None:
        super().__setitem__(debtor, name)
        self._alike.clear()
        for w in set(_WORD.findall(name)):
            self._by_word[w].append(debtor)

    def alike(self, payer: str) -> list[str]:
        """The debtors sharing a word with ``payer`` whose name starts with its letter and
        is ``similar`` to it, in ``sharing_a_word``'s order; kept per payer, as a payer
        pays on several lines and a line nothing fitted is weighed again (at 250k
        debtors a payer's words are shared by 5x the names of 50k, and comparing them
        again for each line grew as the square of the portfolio)."""
        hit = self._alike.get(payer)
        if hit is None:
            hit = self._alike[payer] = [
                d
                for d in self.sharing_a_word(payer)
                if (n := self[d])[:1] == payer[:1] and similar(payer, n)
            ]
        return hit

    def sharing_a_word(self, payer: str) -> list[str]:
        found: dict[str, None] = {}
        for w in set(_WORD.findall(payer)):
            hits = self._by_word.get(w, ())
            if len(hits) <= self.COMMON:
                found.update(dict.fromkeys(hits))
        return list(found)


def _amount_fits(amount: int, opens: list[int], max_items: int) -> bool:
    """The amount equals one open item or the sum of some of them (the oldest
    ``max_items`` are searched: reachable sums, pruned above the amount)."""
    if amount in opens:
        return True
    reachable = {0}
    for o in opens[:max_items]:
        reachable |= {r + o for r in reachable if r + o <= amount}
        if amount in reachable:
            return True
    return False


def _reverse(
    p: Any,
    amount: int,
    by_e2e: dict[str, list[Any]],
    by_bankref: dict[str, list[Any]],
    allocs: list[dict[str, Any]],
    open_cents: dict[str, int],
    parts: dict[str, dict[str, int]],
    reopen: dict[str, int],
) -> dict[str, Any]:
    originals = by_e2e.get(p.end_to_end_id, []) if _str(p.end_to_end_id) else []
    if not originals and _str(p.bank_reference):
        originals = [
            h
            for h in by_bankref.get(p.bank_reference, [])
            if abs(int(h.payment_amount_cents)) == abs(amount)
        ]
    reason = _str(getattr(p, "return_reason", None))
    if not originals:
        why = "reversal/return without the original payment: review" + (
            f" (reason {reason})" if reason else ""
        )
        return _out(p.payment_id, "unmatched", 0, why)
    undone = 0
    for h in originals:
        took = int(h.amount_cents)
        costs = _int(getattr(h, "costs_cents", 0))
        interest = _int(getattr(h, "interest_cents", 0))
        principal = took - costs - interest
        a = _alloc(p.payment_id, h.invoice_id, "reversal")
        a.update(
            amount_cents=-took,
            costs_cents=-costs,
            interest_cents=-interest,
            principal_cents=-principal,
        )
        allocs.append(a)
        if h.invoice_id not in parts:  # a settled item: start from what the ledger holds
            base = _int(getattr(h, "item_open_cents", 0))
            parts[h.invoice_id] = _split(
                base,
                _int(getattr(h, "item_costs_cents", 0)),
                _int(getattr(h, "item_interest_cents", 0)),
            )
            open_cents[h.invoice_id] = base
        parts[h.invoice_id]["costs"] += costs
        parts[h.invoice_id]["interest"] += interest
        parts[h.invoice_id]["principal"] += principal
        open_cents[h.invoice_id] += took
        reopen[h.invoice_id] = open_cents[h.invoice_id]
        undone += took
    return _out(
        p.payment_id,
        "reversed",
        -undone,
        f"undoes {originals[0].payment_id}" + (f" ({reason})" if reason else ""),
    )


def _int(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def _ints(frame: pd.DataFrame, col: str) -> list[int]:
    if col not in frame:
        return [0] * len(frame)
    return [int(v) for v in pd.to_numeric(frame[col]).fillna(0).astype("int64").tolist()]


class _Parts(dict[str, dict[str, int]]):
    """Each item's open amount in components (``_split``), made when the item is first
    asked for, from what was open at the start (``start``) and the costs and interest
    given (only the items that have any). An item passed settled has none (``in`` says
    no) until a reversal reopens it and sets them. A day's million items, a dict each,
    had cost 1.2 s and a few hundred MB; a run touches the items it allocates to."""

    def __init__(
        self, start: dict[str, int], costs: dict[str, int], interest: dict[str, int]
    ) -> None:
        super().__init__()
        self.start, self._costs, self._interest = start, costs, interest

    def __contains__(self, inv: object) -> bool:
        return dict.__contains__(self, inv) or self.start.get(inv, 0) > 0  # type: ignore[call-overload]

    def __missing__(self, inv: str) -> dict[str, int]:
        got = self.of(inv)
        if got is None:
            raise KeyError(inv)
        return got

    def of(self, inv: str) -> dict[str, int] | None:
        """The item's components, or None where it has none: ``in`` and ``[]`` in one
        call (an allocation asks for each component of each item it takes from)."""
        got = dict.get(self, inv)
        if got is None:
            open_ = self.start.get(inv, 0)
            if open_ <= 0:
                return None
            got = self[inv] = _split(open_, self._costs.get(inv, 0), self._interest.get(inv, 0))
        return got


def _split(open_: int, costs: int, interest: int) -> dict[str, int]:
    """An item's open amount in components; costs and interest never exceed it."""
    costs = min(max(costs, 0), open_)
    interest = min(max(interest, 0), open_ - costs)
    return {"costs": costs, "interest": interest, "principal": open_ - costs - interest}


def _alloc(pid: str, inv: str, rule: str) -> dict[str, Any]:
    return {
        "payment_id": pid,
        "invoice_id": inv,
        "amount_cents": 0,
        "rule": rule,
        "costs_cents": 0,
        "interest_cents": 0,
        "principal_cents": 0,
    }


def _out(
    pid: str,
    status: str,
    allocated: int,
    reason: str | None,
    suggestions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "payment_id": pid,
        "status": status,
        "allocated_cents": allocated,
        "unmatched_reason": reason,
        "suggestions": suggestions or [],
    }


# ------------------------------------------------------------------ the inputs' mark

#: the columns of each input the matcher reads (the marks compare these, nothing else)
MARKED_COLUMNS: dict[str, tuple[str, ...]] = {
    # the statement line without its value date and currency, with its status
    "payments": (
        "status",
        *(c for c in PAYMENT_COLUMNS if c not in ("value_date", "currency")),
    ),
    "items": (
        "invoice_id",
        "debtor_id",
        "open_cents",
        "costs_cents",
        "interest_cents",
        "payment_reference",
        "due_date",
    ),
    "debtors": ("debtor_id", "name", "iban"),
    # the item_* columns are left out: they are read only for an item outside the
    # index, which is settled (a split of nothing), or open, and then in the index
    "history": (
        "payment_id",
        "invoice_id",
        "debtor_id",
        "amount_cents",
        "costs_cents",
        "interest_cents",
        "end_to_end_id",
        "bank_reference",
        "counterparty_iban",
        "payment_amount_cents",
    ),
}

_SOURCE_SHA = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class MatchInputs:
    """What one run of the matcher reads, frame by frame (see ``match_payments``)."""

    payments: pd.DataFrame
    items: pd.DataFrame
    debtors: pd.DataFrame
    history: pd.DataFrame

    def mark(self, policy: MatchPolicy) -> str:
        """A digest of the inputs' contents, in any row order, with the policy and this
        matcher's own source: equal marks, equal outcomes. Each row is hashed
        into 64 bits and the hashes summed per frame, with its row count."""
        digest = hashlib.sha256(repr(policy).encode() + _SOURCE_SHA.encode())
        for name, cols in MARKED_COLUMNS.items():
            df: pd.DataFrame = getattr(self, name)
            total = 0
            if len(df):
                canon = pd.DataFrame({c: _canonical(df[c]) for c in cols})
                rows = pd.util.hash_pandas_object(canon, index=False, categorize=False)
                total = int(rows.sum())  # uint64: wraps, as a sum of hashes should
            digest.update(f"{name}:{len(df)}:{total};".encode())
        return digest.hexdigest()

    def after(
        self, result: MatchResult, retry_from: dt.date, history_from: dt.date
    ) -> MatchInputs | None:
        """The inputs as the next run reads them once ``result`` is written and nothing
        else changed: the payments still unmatched (booked from ``retry_from``), the
        items still open at their new amounts, the history with this run's allocations
        (of payments booked from ``history_from``). None when the inputs do not tell: an
        item not open in them was reopened (the next run reads it, and finds it by its
        keys, which this run did not)."""
        items = self.items
        inv = result.invoices.set_index("invoice_id")
        # ids as lists: iterating a column of pandas' strings boxes each (1 s of 2)
        known = set(map(str, items.loc[items["open_cents"] > 0, "invoice_id"].tolist()))
        if not set(map(str, inv.index.tolist())) <= known:
            return None
        if len(inv):
            items = items.copy()
            hit = items["invoice_id"].isin(inv.index)
            for col in ("open_cents", "costs_cents", "interest_cents"):
                items.loc[hit, col] = items.loc[hit, "invoice_id"].map(inv[col]).astype("int64")
            items = items[items["open_cents"] > 0]  # the next run reads the open ones
        outcome = result.payments.set_index("payment_id")["status"]
        status = self.payments["payment_id"].map(outcome)
        still = (status == "unmatched") & (self.payments["booking_date"] >= retry_from)
        payments = self.payments[still].copy()
        payments["status"] = "unmatched"
        new = result.allocations[result.allocations["amount_cents"] > 0]
        history = self.history
        if len(new):
            # each allocation's payment found once, its columns taken by position
            pay = self.payments
            at = pd.Index(pay["payment_id"]).get_indexer(new["payment_id"])
            booked = pd.Series(pay["booking_date"].to_numpy(dtype=object)[at], dtype=object)
            keep = (at >= 0) & (booked >= history_from).to_numpy(dtype=bool)
            new, at = new[keep], at[keep]
            owner = dict(
                zip(
                    self.items["invoice_id"].tolist(), self.items["debtor_id"].tolist(), strict=True
                )
            )
            rows = pd.DataFrame(
                {
                    "payment_id": new["payment_id"].tolist(),
                    "invoice_id": new["invoice_id"].tolist(),
                    "debtor_id": [owner.get(i) for i in new["invoice_id"].tolist()],
                    "amount_cents": new["amount_cents"].astype("int64").tolist(),
                    "costs_cents": new["costs_cents"].astype("int64").tolist(),
                    "interest_cents": new["interest_cents"].astype("int64").tolist(),
                    **{
                        c: pay[c].to_numpy(dtype=object)[at].tolist()
                        for c in ("end_to_end_id", "bank_reference", "counterparty_iban")
                    },
                    "payment_amount_cents": pay["amount_cents"].to_numpy(dtype=object)[at].tolist(),
                }
            )
            history = pd.concat([history[list(MARKED_COLUMNS["history"])], rows], ignore_index=True)
        return MatchInputs(payments, items, self.debtors, history)


def _canonical(col: pd.Series) -> pd.Series:
    """A column as text, the same for the same values whatever the frame's dtype made
    of them: whole numbers from an int column, an object one, one that went float with
    a gap, a bool (as 0/1); dates; None and NaN alike missing."""
    whole = pd.api.types.is_float_dtype(col.dtype) and bool((col.dropna() % 1 == 0).all())
    if pd.api.types.is_bool_dtype(col.dtype) or whole:
        col = col.astype("Int64")
    return col.astype("string")


__all__ = [
    "ALLOCATION_COLUMNS",
    "COMPONENTS",
    "STATUTORY_ORDER",
    "MARKED_COLUMNS",
    "MatchInputs",
    "MatchPolicy",
    "MatchResult",
    "match_payments",
    "references_in_text",
]
