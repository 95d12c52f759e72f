"""Sending throughput against the loopback provider fakes:
``python -m bench.send [--emails 100000] [--sms 20000] [--rounds 3]``.

The channels (real ``sendgrid`` / ``messagebird`` clients, our batching, ids, length
checks) against the same requests fired by a bare client (one ``requests`` session,
pre-built payloads): the fake's capacity on this machine. The fake runs in a process of
its own, as a provider would: in the client's process it shared the GIL, so its JSON
parsing and the client's payload building took turns on one core instead of
overlapping. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from bench.odbc import commit_id
from connectors.messagebird import MessageBirdChannel, MessageBirdSettings
from connectors.secrets import SecretRef
from connectors.sendgrid import SendGridChannel, SendGridSettings
from connectors.sendgrid.channel import BODY_TAG, ID_ARG
from ledger.records import OutboundMessage
from tests.fakes.https import TestCA, make_ca
from tests.fakes.messagebird import MessageBirdServer
from tests.fakes.sendgrid import SendGridServer

TEXT = "Beste klant, uw betaling van € 743,12 staat nog open. Kenmerk 5000056789012345."


def emails(n: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            f"e{i}",
            "c",
            f"R{i}",
            "email",
            "friendly_reminder",
            f"klant{i}@example.nl",
            "Herinnering",
            TEXT,
        )
        for i in range(n)
    ]


def texts(n: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(f"s{i}", "c", f"R{i}", "sms", "friendly_reminder", "+31612345678", "", TEXT)
        for i in range(n)
    ]


def _serve(kind: str, ca: TestCA, pipe: Connection) -> None:
    """The fake in this (child) process; answers the parent's "count", "clear", "stop"."""
    server = SendGridServer(ca) if kind == "sendgrid" else MessageBirdServer(ca)
    with server:
        got = server.box.accepted if isinstance(server, SendGridServer) else server.centre.sent
        key = server.box.api_key if isinstance(server, SendGridServer) else server.centre.access_key
        pipe.send((server.url, key))
        while (cmd := pipe.recv()) != "stop":
            if cmd == "clear":
                got.clear()
            pipe.send(len(got))


class _Remote:
    def __init__(self, url: str, key: str, pipe: Connection) -> None:
        self.url, self.key, self._pipe = url, key, pipe

    def ask(self, cmd: str) -> int:
        self._pipe.send(cmd)
        n = self._pipe.recv()
        assert isinstance(n, int)
        return n


@contextmanager
def remote_fake(kind: str, ca: TestCA) -> Iterator[_Remote]:
    ours, theirs = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_serve, args=(kind, ca, theirs), daemon=True)
    proc.start()
    try:
        url, key = ours.recv()
        yield _Remote(url, key, ours)
    finally:
        ours.send("stop")
        proc.join(10)


def _bare_session(ca: TestCA) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = str(ca.ca_pem)
    return session


def _rounds(
    fake: _Remote,
    n: int,
    rounds: int,
    ours: Callable[[], object],
    bare: Callable[[int], object],
) -> dict[str, Any]:
    """``ours()`` then ``bare(round)``, each timed on an emptied fake that must then hold
    all ``n`` messages; the figures of the rounds."""
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for k in range(rounds):
        for side, fn in (("ours", ours), ("bare", lambda k=k: bare(k))):
            fake.ask("clear")
            t = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - t)
            assert fake.ask("count") == n, f"{side}: the fake holds not all {n} messages"
    return _figures(n, times["ours"], times["bare"])


def _figures(n: int, ours: list[float], bare: list[float]) -> dict[str, Any]:
    """Medians over the rounds, and every round's share (the spread is part of the
    figure: on this machine a single round varies by about 10%)."""
    o, b = statistics.median(ours), statistics.median(bare)
    return {
        "messages": n,
        "rounds": len(ours),
        "seconds": round(o, 2),
        "per_second": round(n / o),
        "bare_seconds": round(b, 2),
        "bare_per_second": round(n / b),
        "share_of_capacity": round(b / o, 2),
        "share_per_round": [round(y / x, 2) for x, y in zip(ours, bare, strict=True)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--emails", type=int, default=100_000)
    ap.add_argument("--sms", type=int, default=20_000)
    ap.add_argument(
        "--rounds", type=int, default=3, help="ours then bare, this often; medians are kept"
    )
    args = ap.parse_args()
    ca = make_ca(Path(tempfile.mkdtemp(prefix="vangnet-bench-ca-")))
    os.environ["SSL_CERT_FILE"] = str(ca.ca_pem)
    out: dict[str, object] = {"benchmark": "send"}
    with remote_fake("sendgrid", ca) as sg:
        ch = SendGridChannel(
            "email",
            SendGridSettings(api_key=SecretRef(env="X"), host=sg.url, from_email="a@b.nl"),
            SecretStr(sg.key),
        )
        batch = emails(args.emails)
        payloads: list[dict[str, Any]] = [
            {
                "personalizations": [
                    {
                        "to": [{"email": m.to}],
                        "subject": m.subject,
                        "substitutions": {BODY_TAG: m.body_text},
                        "custom_args": {ID_ARG: m.message_id},
                    }
                    for m in batch[k : k + 1000]
                ],
                "from": {"email": "a@b.nl"},
                "content": [{"type": "text/plain", "value": BODY_TAG}],
            }
            for k in range(0, len(batch), 1000)
        ]
        session = _bare_session(ca)

        def bare_email(_: int) -> None:
            for p in payloads:
                session.post(
                    f"{sg.url}/v3/mail/send",
                    json=p,
                    headers={"Authorization": f"Bearer {sg.key}"},
                    timeout=30,
                )

        out["email"] = _rounds(sg, args.emails, args.rounds, lambda: ch.send(batch), bare_email)
    with remote_fake("messagebird", ca) as mb:
        mch = MessageBirdChannel(
            "sms",
            MessageBirdSettings(
                access_key=SecretRef(env="X"),
                originator="Bench",
                endpoint=mb.url,
                ca_bundle=str(ca.ca_pem),
            ),
            SecretStr(mb.key),
        )
        texts_batch = texts(args.sms)
        sms_session = _bare_session(ca)
        headers = {"Authorization": f"AccessKey {mb.key}"}

        def bare_sms(k: int) -> None:
            for m in texts_batch:
                sms_session.post(
                    f"{mb.url}/messages",
                    headers=headers,
                    timeout=30,
                    json={
                        "originator": "Bench",
                        "recipients": "31612345678",
                        "body": m.body_text,
                        "reference": f"{m.message_id}b{k}",  # a new one each round
                    },
                )

        out["sms"] = _rounds(mb, args.sms, args.rounds, lambda: mch.send(texts_batch), bare_sms)
    out.update(
        date=dt.datetime.now(dt.UTC).isoformat(),
        commit=commit_id(),
        machine={"cpus": os.cpu_count()},
    )
    for channel in ("email", "sms"):
        r = out[channel]
        assert isinstance(r, dict)
        print(
            f"{channel}: {r['messages']:,} in {r['seconds']} s = {r['per_second']:,}/s; the fake's "
            f"capacity with a bare client {r['bare_per_second']:,}/s; "
            f"{r['share_of_capacity']:.0%} of it (median of {r['rounds']} rounds:"
            f" {', '.join(f'{x:.0%}' for x in r['share_per_round'])})"
        )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    (res / f"send-{dt.date.today().isoformat()}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
