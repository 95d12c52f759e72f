"""An A/B test of the friendly reminder through plan, send and the outcome report: arms
assigned by hash, the variant's subject and opening in the outbox, the legal body
untouched, outcomes counted once their window has passed, a harmful variant stopped."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import yaml
from sqlalchemy import insert, select

from flows import stages
from flows.config import ConfigError, load
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.store import utcnow
from tests.cycle_steps import up_to_plan
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
EXPERIMENT = {
    "name": "toon",
    "step": "friendly_reminder",
    "holdout": 0.3,
    "min_contacts": 10,
    "variants": {
        "warm": {"subject": "Even een seintje van {creditor}", "intro": "Fijn dat u dit leest."},
        "kort": {"subject": "Betaling {creditor}", "hour": "16:00"},
    },
}


def _ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = seed(tmp_path / "demo", 400, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc["experiments"] = [EXPERIMENT]
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    return cfg, ctx


def test_variants_are_assigned_sent_and_measured(tmp_path: Path) -> None:
    cfg, ctx = _ctx(tmp_path)
    with ctx.engine.connect() as conn:
        planned = conn.execute(
            select(s.contacts.c.step, s.contacts.c.variant, s.contacts.c.send_after)
        ).all()
    friendly = [p for p in planned if p.step == "friendly_reminder"]
    assert friendly and all(p.variant and p.variant.startswith("toon:") for p in friendly)
    assert all(p.variant is None for p in planned if p.step != "friendly_reminder")
    arms = {p.variant.split(":")[1] for p in friendly}
    assert arms <= {"control", "warm", "kort"} and len(arms) >= 2
    for p in friendly:
        if p.variant == "toon:kort":
            assert p.send_after.astimezone(AMS).time() == dt.time(16, 0)

    for channel in ctx.cfg.channels:
        stages.send_channel(ctx, channel)
    outbox = list((tmp_path / "demo" / "outbox").glob("email/*/*.txt"))  # SMS: a short text
    texts = [f.read_text() for f in outbox]
    warm = [t for t in texts if "Even een seintje van" in t]
    if "warm" in arms:
        assert warm and all("Fijn dat u dit leest." in t for t in warm)
        assert all("Misschien bent u het vergeten" in t for t in warm)  # the body stays

    # a month on: contacts sent 20 days ago, the short variant drew complaints
    with ctx.engine.begin() as conn:
        for k in range(30):
            for arm, complained in (("control", k < 1), ("kort", k < 12)):
                mid = str(uuid.uuid4())
                at = NOW - dt.timedelta(days=20)
                conn.execute(
                    insert(s.contacts).values(
                        creditor_id=ctx.creditor_id,
                        debtor_id=f"X{arm}{k}",
                        dossier=f"D{k}",
                        step="friendly_reminder",
                        channel="email",
                        message_id=mid,
                        status="sent",
                        segment="forgetful",
                        send_after=at,
                        cycle_date=at.date(),
                        amount_cents=1,
                        invoice_ids=[],
                        reasons=[],
                        variant=f"toon:{arm}",
                        sent_at=at,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
                if complained:
                    conn.execute(
                        insert(s.contact_events).values(
                            creditor_id=ctx.creditor_id,
                            message_id=mid,
                            event="complained",
                            provider_event_id=f"ev-{mid}",
                            occurred_at=at,
                            detail={},
                        )
                    )
    report = stages.experiment_report(ctx)
    kort = next(r for r in report if r["arm"] == "kort")
    control = next(r for r in report if r["arm"] == "control")
    assert (kort["contacts"], kort["complained"]) == (30, 12)
    assert control["complained"] == 1 and kort["status"].startswith("stopped: complained 12/30")
    assert json.dumps(report)  # artifact-ready
    # from now on its debtors get the standard message
    assert all(
        a != "kort"
        for a in [
            stages.experiments.assign(stages.experiments_now(ctx)["friendly_reminder"], f"R{i}")
            for i in range(500)
        ]
    )


def test_the_legal_letter_cannot_be_an_experiment(tmp_path: Path) -> None:
    cfg = seed(tmp_path / "demo", 10, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc["experiments"] = [{**EXPERIMENT, "step": "wik_letter"}]
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        load(cfg)
    except ConfigError as exc:
        assert "legal content" in str(exc)
    else:
        raise AssertionError("an experiment on the 14-day letter was accepted")
