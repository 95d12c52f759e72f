"""What every StatusWriter shares: changes grouped by entity, and value comparison for
the "already there" check that keeps a repeated write-back from writing again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger.records import WriteBack, WriteResult


def by_entity(
    changes: Sequence[WriteBack], configured: Mapping[str, Any], failed: dict[str, WriteResult]
) -> Iterator[tuple[str, Any, list[WriteBack]]]:
    """(entity, its write-back mapping, its changes) in order of first appearance; the
    changes of an entity without a mapping are recorded as failed in ``failed``."""
    for entity in dict.fromkeys(c.entity for c in changes):
        mine = [c for c in changes if c.entity == entity]
        mapping = configured.get(entity)
        if mapping is None:
            failed.update(
                {
                    c.change_id: WriteResult(c.change_id, "failed", f"no write_back for {entity}")
                    for c in mine
                }
            )
            continue
        yield entity, mapping, mine


def same_value(current: Any, wanted: Any) -> bool:
    """Equal as the target holds it: amounts compared to the cent, the rest as given."""
    try:
        return Decimal(str(current)).quantize(Decimal("0.01")) == Decimal(str(wanted)).quantize(
            Decimal("0.01")
        )
    except (InvalidOperation, ValueError):
        return bool(current == wanted)


__all__ = ["by_entity", "same_value"]
