"""A/B variants of a contact step, measured honestly and stopped when they hurt.

- **Assignment** by a stable hash of (experiment, debtor): the same debtor always gets
  the same variant; a ``holdout`` share keeps the standard message (the control).
- **What may vary**: the subject line, an opening sentence (tone) and the send hour.
  Never the legal content: experiments on the 14-day letter or the hand-over are
  refused, and the body with amounts, reference, deadline and help stays the template's.
- **Outcomes** per variant: paid within N days, responded (opened or clicked),
  complained, hardship (asked for help or went into debt assistance), with counts and a
  95% Wilson interval.
- **Guardrail**: a variant whose complaint or hardship rate is clearly worse than the
  control's (its interval lies above the control's rate, with enough contacts) is
  stopped; its debtors get the control from then on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LEGAL_STEPS = frozenset({"wik_letter", "handover"})
CONTROL = "control"


@dataclass(frozen=True)
class Variant:
    name: str
    subject: str | None = None
    intro: str | None = None
    hour: str | None = None  # "HH:MM", inside the contact window


@dataclass(frozen=True)
class Experiment:
    name: str
    step: str
    variants: tuple[Variant, ...]
    holdout: float = 0.2
    outcome_days: int = 14
    min_contacts: int = 30  # per arm before a guardrail may stop a variant
    stopped: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.step in LEGAL_STEPS:
            raise ValueError(f"{self.step} carries legal content: it is never experimented on")
        if not self.variants:
            raise ValueError("an experiment needs at least one variant")
        if not 0 <= self.holdout < 1:
            raise ValueError("holdout is a share between 0 and 1")


def assign(exp: Experiment, debtor_id: str) -> str:
    """The debtor's arm: ``control`` or a variant name (stable; stopped variants fall
    back to the control)."""
    h = hashlib.sha256(f"{exp.name}|{debtor_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < exp.holdout:
        return CONTROL
    names = sorted(v.name for v in exp.variants)
    arm = names[min(int((u - exp.holdout) / (1 - exp.holdout) * len(names)), len(names) - 1)]
    return CONTROL if arm in exp.stopped else arm


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class ArmOutcome:
    arm: str
    contacts: int = 0
    paid: int = 0
    responded: int = 0
    complained: int = 0
    hardship: int = 0

    def row(self) -> dict[str, object]:
        lo, hi = wilson(self.paid, self.contacts)
        return {
            "arm": self.arm,
            "contacts": self.contacts,
            "paid": self.paid,
            "paid_rate": round(self.paid / self.contacts, 3) if self.contacts else None,
            "paid_95ci": f"{lo:.2f}-{hi:.2f}",
            "responded": self.responded,
            "complained": self.complained,
            "hardship": self.hardship,
        }


def outcomes(records: Iterable[Mapping[str, object]]) -> dict[str, ArmOutcome]:
    """Per arm from contact records with ``arm`` and booleans ``paid``, ``responded``,
    ``complained``, ``hardship``."""
    out: dict[str, ArmOutcome] = {}
    for r in records:
        a = out.setdefault(str(r["arm"]), ArmOutcome(str(r["arm"])))
        a.contacts += 1
        a.paid += int(bool(r["paid"]))
        a.responded += int(bool(r["responded"]))
        a.complained += int(bool(r["complained"]))
        a.hardship += int(bool(r["hardship"]))
    return out


def to_stop(exp: Experiment, arms: Mapping[str, ArmOutcome]) -> dict[str, str]:
    """Variants to stop, with why: complaints or hardship clearly worse than control."""
    control = arms.get(CONTROL)
    if control is None or control.contacts < exp.min_contacts:
        return {}
    stop: dict[str, str] = {}
    for name, a in arms.items():
        if name == CONTROL or name in exp.stopped or a.contacts < exp.min_contacts:
            continue
        for measure in ("complained", "hardship"):
            rate_control = getattr(control, measure) / control.contacts
            lo, _ = wilson(getattr(a, measure), a.contacts)
            if lo > rate_control:
                stop[name] = (
                    f"{measure} {getattr(a, measure)}/{a.contacts} against control "
                    f"{getattr(control, measure)}/{control.contacts}"
                )
                break
    return stop


__all__ = [
    "CONTROL",
    "LEGAL_STEPS",
    "ArmOutcome",
    "Experiment",
    "Variant",
    "assign",
    "outcomes",
    "to_stop",
    "wilson",
]
