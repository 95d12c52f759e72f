"""Sending throughput against the loopback provider fakes:
``python -m bench.send [--emails 100000] [--sms 100000]``.

The channels (real ``sendgrid`` / ``messagebird`` clients, our batching, ids, length
checks) against the same requests fired by a bare client (one ``requests`` session,
pre-built payloads): the fake's capacity on this machine. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
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
from tests.fakes.https import make_ca
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--emails", type=int, default=100_000)
    ap.add_argument("--sms", type=int, default=100_000)
    args = ap.parse_args()
    ca = make_ca(Path(tempfile.mkdtemp(prefix="vangnet-bench-ca-")))
    os.environ["SSL_CERT_FILE"] = str(ca.ca_pem)
    out: dict[str, object] = {"benchmark": "send"}
    with SendGridServer(ca) as sg:
        ch = SendGridChannel(
            "email",
            SendGridSettings(api_key=SecretRef(env="X"), host=sg.url, from_email="a@b.nl"),
            SecretStr(sg.box.api_key),
        )
        batch = emails(args.emails)
        t = time.perf_counter()
        ch.send(batch)
        ours = time.perf_counter() - t
        assert len(sg.box.accepted) == args.emails
        sg.box.accepted.clear()
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
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca.ca_pem)
        t = time.perf_counter()
        for p in payloads:
            session.post(
                f"{sg.url}/v3/mail/send",
                json=p,
                headers={"Authorization": f"Bearer {sg.box.api_key}"},
                timeout=30,
            )
        bare = time.perf_counter() - t
        out["email"] = {
            "messages": args.emails,
            "seconds": round(ours, 2),
            "per_second": round(args.emails / ours),
            "bare_seconds": round(bare, 2),
            "bare_per_second": round(args.emails / bare),
            "share_of_capacity": round(bare / ours, 2),
        }
    with MessageBirdServer(ca) as mb:
        mch = MessageBirdChannel(
            "sms",
            MessageBirdSettings(
                access_key=SecretRef(env="X"),
                originator="Bench",
                endpoint=mb.url,
                ca_bundle=str(ca.ca_pem),
            ),
            SecretStr(mb.centre.access_key),
        )
        batch = texts(args.sms)
        t = time.perf_counter()
        mch.send(batch)
        ours = time.perf_counter() - t
        assert len(mb.centre.sent) == args.sms
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca.ca_pem)
        headers = {"Authorization": f"AccessKey {mb.centre.access_key}"}
        t = time.perf_counter()
        for m in batch:
            session.post(
                f"{mb.url}/messages",
                headers=headers,
                timeout=30,
                json={
                    "originator": "Bench",
                    "recipients": "31612345678",
                    "body": m.body_text,
                    "reference": m.message_id + "b",
                },
            )
        bare = time.perf_counter() - t
        out["sms"] = {
            "messages": args.sms,
            "seconds": round(ours, 2),
            "per_second": round(args.sms / ours),
            "bare_seconds": round(bare, 2),
            "bare_per_second": round(args.sms / bare),
            "share_of_capacity": round(bare / ours, 2),
        }
    out.update(
        date=dt.datetime.now(dt.UTC).isoformat(),
        commit=commit_id(),
        machine={"cpus": os.cpu_count()},
    )
    for k in ("email", "sms"):
        r = out[k]
        assert isinstance(r, dict)
        print(
            f"{k}: {r['messages']:,} in {r['seconds']} s = {r['per_second']:,}/s; the fake's "
            f"capacity with a bare client {r['bare_per_second']:,}/s; "
            f"{r['share_of_capacity']:.0%} of it"
        )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    (res / f"send-{dt.date.today().isoformat()}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
