"""Segments (personas) by transparent rules over the signals (DOMAIN.md "Segments").

Rules are evaluated in order; the first that holds decides, and its conditions with
their values are stored as the reasons. Thresholds come from the creditor's policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from transforms.signals import NO_MONEY_REASONS

SEGMENTS = ("protected", "cant_pay", "wont_pay", "forgetful", "on_time")

LABELS_NL = {
    "protected": "beschermd (schuldhulp)",
    "cant_pay": "wil wel, kan niet",
    "wont_pay": "kan wel, wil niet",
    "forgetful": "vergeetachtig",
    "on_time": "betaalt op tijd",
}

DEFAULT_THRESHOLDS: dict[str, float] = {
    "cant_pay_open_claims": 3,
    "wont_pay_days_overdue": 45,
    "wont_pay_unanswered": 2,
    "forgetful_avg_days_late": 3,
    "forgetful_late_count": 2,
}


def assign_segments(
    signals: pd.DataFrame, thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """debtor_id, segment, score, reasons (a list of {signal, value, rule}) per debtor."""
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    s = signals
    conds: list[tuple[str, pd.Series, list[tuple[str, str]]]] = [
        ("protected", s["in_debt_assistance"], [("in_debt_assistance", "is true")]),
        (
            "cant_pay",
            s["partial_payment"]
            | (s["open_overdue_count"] >= t["cant_pay_open_claims"])
            | _col(s, "reversed_direct_debit", "").isin(NO_MONEY_REASONS)
            | _col(s, "broken_arrangement", False).astype(bool),
            [
                ("partial_payment", "is true"),
                ("open_overdue_count", f">= {t['cant_pay_open_claims']:g}"),
                ("reversed_direct_debit", "is a no-money return (AM04, MS02, AC04, AC06)"),
                ("broken_arrangement", "is true"),
            ],
        ),
        (
            "wont_pay",
            (s["max_days_overdue"] >= t["wont_pay_days_overdue"])
            & (s["contacts_unanswered"] >= t["wont_pay_unanswered"])
            & ~s["partial_payment"],
            [
                ("max_days_overdue", f">= {t['wont_pay_days_overdue']:g}"),
                ("contacts_unanswered", f">= {t['wont_pay_unanswered']:g}"),
                ("partial_payment", "is false"),
            ],
        ),
        (
            "forgetful",
            (s["avg_days_late"] >= t["forgetful_avg_days_late"])
            | (s["late_history_count"] >= t["forgetful_late_count"])
            | s["late_twice_in_a_row"],
            [
                ("avg_days_late", f">= {t['forgetful_avg_days_late']:g}"),
                ("late_history_count", f">= {t['forgetful_late_count']:g}"),
                ("late_twice_in_a_row", "is true"),
            ],
        ),
    ]
    segment = np.select([c for _, c, _ in conds], [n for n, _, _ in conds], default="on_time")
    out = pd.DataFrame({"debtor_id": s["debtor_id"].to_numpy(), "segment": segment})
    # score orders debtors inside a segment: older and larger arrears first
    out["score"] = (
        (
            s["max_days_overdue"].clip(upper=365) * 10
            + (s["overdue_cents"] // 10_000).clip(upper=1000)
        )
        .astype(int)
        .to_numpy()
    )
    rules = {n: r for n, _, r in conds}
    records = s.to_dict("records")
    reasons: list[list[dict[str, Any]]] = []
    for rec, seg in zip(records, segment, strict=True):
        rec.setdefault("reversed_direct_debit", "")
        rec.setdefault("broken_arrangement", False)
        if seg == "on_time":
            reasons.append(
                [
                    {
                        "signal": "late_history_count",
                        "value": int(rec["late_history_count"]),
                        "rule": "no other segment rule held",
                    }
                ]
            )
            continue
        reasons.append(
            [
                {"signal": sig, "value": _plain(rec[sig]), "rule": f"{sig} {rule}"}
                for sig, rule in rules[seg]
                if _holds(rec[sig], rule)
            ]
        )
    out["reasons"] = reasons
    return out


def _col(s: pd.DataFrame, name: str, default: Any) -> pd.Series:
    return s[name] if name in s else pd.Series(default, index=s.index)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _holds(value: Any, rule: str) -> bool:
    if rule.startswith("is a no-money return"):
        return value in NO_MONEY_REASONS
    if rule == "is true":
        return bool(value)
    if rule == "is false":
        return not bool(value)
    op, num = rule.split()
    return float(value) >= float(num) if op == ">=" else False


__all__ = ["DEFAULT_THRESHOLDS", "LABELS_NL", "SEGMENTS", "assign_segments"]
