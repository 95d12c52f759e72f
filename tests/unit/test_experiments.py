import pytest

from transforms.experiments import (
    CONTROL,
    ArmOutcome,
    Experiment,
    Variant,
    assign,
    to_stop,
    wilson,
)

EXP = Experiment("tone", "friendly_reminder", (Variant("warm"), Variant("short")), holdout=0.2)


def test_assignment_is_stable_and_keeps_a_holdout() -> None:
    arms = [assign(EXP, f"R{i:07d}") for i in range(20_000)]
    assert arms == [assign(EXP, f"R{i:07d}") for i in range(20_000)]
    share = {a: arms.count(a) / len(arms) for a in set(arms)}
    assert set(share) == {CONTROL, "warm", "short"}
    assert abs(share[CONTROL] - 0.2) < 0.02 and abs(share["warm"] - 0.4) < 0.02
    stopped = Experiment(EXP.name, EXP.step, EXP.variants, 0.2, stopped=frozenset({"warm"}))
    assert all(assign(stopped, f"R{i:07d}") != "warm" for i in range(2_000))


def test_legal_content_is_never_an_experiment() -> None:
    with pytest.raises(ValueError, match="legal content"):
        Experiment("x", "wik_letter", (Variant("a"),))


def test_wilson_interval() -> None:
    lo, hi = wilson(50, 100)
    assert round(lo, 3) == 0.404 and round(hi, 3) == 0.596
    assert wilson(0, 0) == (0.0, 1.0)


def test_a_variant_with_clearly_more_complaints_is_stopped() -> None:
    arms = {
        CONTROL: ArmOutcome(CONTROL, contacts=200, complained=2),
        "warm": ArmOutcome("warm", contacts=200, complained=3),  # noise: keeps running
        "short": ArmOutcome("short", contacts=200, complained=20),
    }
    stop = to_stop(EXP, arms)
    assert list(stop) == ["short"] and "complained 20/200" in stop["short"]
    few = {
        CONTROL: ArmOutcome(CONTROL, contacts=10),
        "short": ArmOutcome("short", 10, complained=9),
    }
    assert to_stop(EXP, few) == {}  # too few contacts to judge
