"""The MessageBird channel with the real ``messagebird`` client against the loopback
fake (HTTPS, test CA): reference = our id, GSM-7 folding and the segment cap, one bad
number failing alone, 429/5xx retriable, lookup by reference; and the send step killed
many times with every SMS accepted exactly once."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from connectors.errors import RetriableError
from connectors.messagebird import MessageBirdChannel, MessageBirdSettings
from connectors.secrets import SecretRef
from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger.records import OutboundMessage, Receipt
from tests.cycle_steps import planned_ids, up_to_plan
from tests.fakes.https import TestCA as CA
from tests.fakes.https import make_ca
from tests.fakes.messagebird import MessageBirdServer, channel_config
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
KEY = "live_test_key"


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def fake(ca: CA) -> Iterator[MessageBirdServer]:
    with MessageBirdServer(ca) as server:
        yield server


def channel(fake: MessageBirdServer, ca: CA, **kw) -> MessageBirdChannel:  # type: ignore[no-untyped-def]
    settings = MessageBirdSettings(
        access_key=SecretRef(env="MB_KEY"),
        originator="WoonCorp",
        endpoint=fake.url,
        ca_bundle=str(ca.ca_pem),
        **kw,
    )
    return MessageBirdChannel("sms", settings, SecretStr(KEY))


def sms(i: int, to: str = "+31612345678", body: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        f"s-{i:05d}",
        "c",
        f"R{i}",
        "sms",
        "friendly_reminder",
        to,
        "",
        body or f"Woonstichting: herinnering {i}, € 12,50 staat open.",
    )


def test_sms_goes_out_with_our_reference_in_gsm7(fake: MessageBirdServer, ca: CA) -> None:
    ch = channel(fake, ca)
    receipts = ch.send([sms(1, body="Beste Şule, € 12,50 staat open…"), sms(2)])
    assert [r.status for r in receipts] == ["sent", "sent"]
    # the provider's id of each message, as its answer gave it
    assert [r.provider_id for r in receipts] == [
        str(fake.centre.sent[k]["id"]) for k in ("s-00001", "s-00002")
    ]
    got = fake.centre.sent["s-00001"]
    assert got["body"] == "Beste Sule, € 12,50 staat open..." and got["datacoding"] == "plain"
    assert got["recipients"]["items"][0]["recipient"] == 31612345678
    assert set(ch.lookup(["s-00002", "s-09999"])) == {"s-00002"}


def test_limits_fail_one_message_not_the_batch(fake: MessageBirdServer, ca: CA) -> None:
    receipts = {
        r.message_id: r
        for r in channel(fake, ca, max_segments=2).send(
            [sms(1, to="12"), sms(2, body="x" * 400), sms(3)]
        )
    }
    assert receipts["s-00001"].status == "failed" and "recipients" in (
        receipts["s-00001"].error or ""
    )
    assert receipts["s-00002"].status == "failed" and "3 SMS segments" in (
        receipts["s-00002"].error or ""
    )
    assert receipts["s-00003"].status == "sent" and set(fake.centre.sent) == {"s-00003"}


def test_rate_limits_and_server_errors_are_retriable(fake: MessageBirdServer, ca: CA) -> None:
    for kind in ("429", "500"):
        fake.faults.add(kind)
        with pytest.raises(RetriableError, match=kind):
            channel(fake, ca).send([sms(1)])
    fake.faults.add("slow", seconds=1.5)
    with pytest.raises(RetriableError, match="Timeout"):
        channel(fake, ca, timeout_seconds=0.5).send([sms(2)])


class Dies(MessageBirdChannel):
    def __init__(self, inner: MessageBirdChannel, after: int | None) -> None:
        self.__dict__.update(inner.__dict__)
        self.after = after

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        if self.after is None:
            return super().send(batch)
        super().send(batch[: self.after])  # MessageBird has these ...
        raise RuntimeError("killed")  # ... we never heard


def test_the_send_step_dies_many_times_and_every_sms_goes_out_once(
    tmp_path: Path, fake: MessageBirdServer, ca: CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = seed(tmp_path / "demo", 400, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc["channels"]["sms"] = channel_config(fake, ca)
    doc["policy"]["ambiguous_settle_seconds"] = 0  # the fake's lookup is never late
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("MB_KEY", KEY)
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    due = planned_ids(ctx, "sms")
    assert len(due) > 10
    real = stages._channel(ctx, "sms")
    rng = random.Random(3)
    for _ in range(20):
        with contextlib.suppress(RuntimeError):
            stages.send_channel(
                ctx, "sms", batch_size=5, channel=Dies(real, rng.choice([None, 0, 2, 4]))
            )
    stages.send_channel(ctx, "sms", batch_size=5)
    assert set(fake.centre.sent) == due and set(fake.centre.deliveries.values()) == {1}
    bodies = [m["body"] for m in fake.centre.sent.values()]
    assert all(len(b) < 306 and ("Kenmerk" in b or "Reference" in b) for b in bodies)
