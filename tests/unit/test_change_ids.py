"""A planned write-back's id is the hash of what it writes, so the same change is planned
once however often reconcile runs. Applied changes stay in the ledger with that id: if
a release computed it differently, every change of earlier days would be planned and
written again once. Here the id is checked against the text it has always hashed,
``json.dumps([creditor, target, entity, record, values], sort_keys=True)``, and against
one id written down when it was first computed."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.stages import _write_back_row

_text = st.text(max_size=12)
_value = st.one_of(st.none(), st.booleans(), st.integers(), _text)


def _reference(creditor: str, target: str, entity: str, record: str, values: Any) -> str:
    text = json.dumps([creditor, target, entity, record, values], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@settings(max_examples=300, deadline=None)
@given(
    creditor=_text,
    target=_text,
    entity=_text,
    record=_text,
    values=st.dictionaries(_text, _value, max_size=5),
)
def test_a_change_id_is_the_hash_it_always_was(
    creditor: str, target: str, entity: str, record: str, values: dict[str, Any]
) -> None:
    ctx: Any = SimpleNamespace(creditor_id=creditor)
    row = _write_back_row(ctx, target, entity, record, values, "v1")
    assert row["change_id"] == _reference(creditor, target, entity, record, values)


#: the id the code before 2026-12-04's encoder change gave the change below (c7344f3)
KNOWN = "f4d0a136da367619a0604dcee3feb610"


def test_a_known_change_keeps_its_id() -> None:
    ctx: Any = SimpleNamespace(creditor_id="woonzorg")
    values = {"status": "deels betaald", "open_amount": "12.50", "open_costs": "0.00"}
    row = _write_back_row(ctx, "erp", "invoices", "F2026-0000006", values, "v1")
    assert row["change_id"] == _reference("woonzorg", "erp", "invoices", "F2026-0000006", values)
    assert row["change_id"] == KNOWN
