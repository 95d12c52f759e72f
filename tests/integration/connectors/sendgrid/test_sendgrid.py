"""The SendGrid channel with the real ``sendgrid`` client against the loopback fake
(HTTPS, test CA): batches within the 1,000 limit, per-recipient texts and ids, a bad
address that fails alone, 429 waits as the headers say, 5xx retriable, the activity
lookup that settles an ambiguous send; and the cycle's send step crashing at random
points against it with every message delivered exactly once."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import select

from connectors.errors import RetriableError
from connectors.secrets import SecretRef
from connectors.sendgrid import SendGridChannel, SendGridSettings
from flows import stages
from flows.context import make_ctx
from flows.demo import seed
from ledger import schema as s
from ledger.records import OutboundMessage, Receipt
from tests.cycle_steps import planned_ids, up_to_plan
from tests.fakes.https import make_ca
from tests.fakes.sendgrid import SendGridServer, channel_config
from transforms.contact_window import AMS

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=AMS)
KEY = "SG.test-key"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridServer]:
    ca = make_ca(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_pem))  # urllib's trust store for the fake
    with SendGridServer(ca) as server:
        yield server


def channel(fake: SendGridServer, sleeps: list[float] | None = None, **kw) -> SendGridChannel:  # type: ignore[no-untyped-def]
    settings = SendGridSettings(
        api_key=SecretRef(env="SG_KEY"), host=fake.url, from_email="incasso@wooncorp.nl", **kw
    )
    return SendGridChannel(
        "email",
        settings,
        SecretStr(KEY),
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )


def msg(i: int, to: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        f"m-{i:05d}",
        "c",
        f"R{i}",
        "email",
        "friendly_reminder",
        to or f"debiteur{i}@example.nl",
        f"Herinnering {i}",
        f"Beste klant {i}, ...",
    )


def test_batches_carry_each_recipients_own_text_and_id(fake: SendGridServer) -> None:
    ch = channel(fake)
    receipts = ch.send([msg(i) for i in range(2_345)])
    assert [r.status for r in receipts] == ["sent"] * 2_345
    assert fake.box.posts == 3  # 1,000 + 1,000 + 345
    got = fake.box.accepted["m-01234"]
    assert (
        got["to"] == [{"email": "debiteur1234@example.nl"}] and got["subject"] == "Herinnering 1234"
    )
    assert (
        got["text"] == "Beste klant 1234, ..." and got["custom_args"]["step"] == "friendly_reminder"
    )


def test_one_bad_address_fails_alone(fake: SendGridServer) -> None:
    batch = [msg(0), msg(1, to="geen-adres"), msg(2)]
    receipts = {r.message_id: r for r in channel(fake).send(batch)}
    assert receipts["m-00001"].status == "failed" and "personalizations.1.to.0.email" in (
        receipts["m-00001"].error or ""
    )
    assert receipts["m-00000"].status == receipts["m-00002"].status == "sent"
    assert set(fake.box.accepted) == {"m-00000", "m-00002"}


def test_rate_limits_are_waited_out_and_server_errors_are_retriable(fake: SendGridServer) -> None:
    import time

    fake.box.rate_limit, fake.box.window_seconds = 2, 1.0
    sleeps: list[float] = []
    ch = channel(fake, batch_size=10)
    ch._sleep = lambda x: (sleeps.append(x), time.sleep(x))  # type: ignore[assignment]
    receipts = ch.send([msg(i) for i in range(50)])
    assert all(r.status == "sent" for r in receipts) and len(fake.box.accepted) == 50
    assert sleeps and all(0 <= s <= 60 for s in sleeps)
    fake.box.rate_limit = None
    fake.faults.add("500")
    with pytest.raises(RetriableError, match="HTTP 500"):
        channel(fake).send([msg(99)])
    fake.faults.add("slow", seconds=1.5)
    with pytest.raises(RetriableError):
        channel(fake, timeout_seconds=0.5).send([msg(98)])


def test_requests_share_a_kept_connection_and_a_broken_one_is_ambiguous(
    fake: SendGridServer,
) -> None:
    ch = channel(fake, batch_size=100, parallel_requests=1)
    assert all(r.status == "sent" for r in ch.send([msg(i) for i in range(450)]))
    assert fake.box.posts == 5 and fake.connections == 1 and ch.pool.opened == 1
    # closed at the end of a send: the next send opens its own
    ch.send([msg(500)])
    assert fake.connections == 2
    # the server drops the kept connection mid-batch: retriable (the stage looks the
    # batch up before sending again), never resent blindly by the transport
    fake.faults.add("reset")
    with pytest.raises(RetriableError, match="SendGrid"):
        ch.send([msg(i) for i in range(600, 800)])
    assert "m-00600" not in fake.box.accepted
    # a connection idle longer than the pool allows is not reused
    ch.pool.idle_seconds = 0.0
    before = fake.connections
    ch.send([msg(i) for i in range(900, 1_200)])
    assert fake.connections - before == 3 and "m-01199" in fake.box.accepted


def test_lookup_settles_an_ambiguous_send(fake: SendGridServer) -> None:
    ch = channel(fake)
    ch.send([msg(1)])
    found = ch.lookup(["m-00001", "m-00002"])
    assert set(found) == {"m-00001"} and found["m-00001"].provider_id


class Dies(SendGridChannel):
    """The real channel; the process dies after SendGrid accepted the request."""

    def __init__(self, inner: SendGridChannel, die: bool) -> None:
        self.__dict__.update(inner.__dict__)
        self.die = die

    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        out = super().send(batch)
        if self.die:
            raise RuntimeError("killed after the provider accepted")
        return out


def test_the_send_step_dies_many_times_and_every_email_goes_out_once(
    tmp_path: Path, fake: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = seed(tmp_path / "demo", 300, NOW.date())
    doc = yaml.safe_load(cfg.read_text())
    doc["channels"]["email"] = channel_config(fake, batch_size=7)
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("SG_KEY", KEY)
    ctx = make_ctx(str(cfg), NOW)
    up_to_plan(ctx)
    due = planned_ids(ctx, "email")
    assert len(due) > 20
    real = stages._channel(ctx, "email")
    assert isinstance(real, SendGridChannel)
    rng = random.Random(8)
    kills = 0
    for _ in range(25):
        try:
            stages.send_channel(ctx, "email", batch_size=7, channel=Dies(real, rng.random() < 0.5))
        except RuntimeError:
            kills += 1
    stages.send_channel(ctx, "email", batch_size=7)  # the configured channel, as the cycle runs it
    assert kills > 0
    assert set(fake.box.accepted) == due  # none lost, none extra
    with ctx.engine.connect() as conn:
        statuses = set(
            conn.execute(
                select(s.contacts.c.status).where(s.contacts.c.channel == "email")
            ).scalars()
        )
    assert statuses == {"sent"}
    # each message reached SendGrid in exactly one accepted personalization
    assert set(fake.box.deliveries.values()) == {1}
