"""A loopback Schuldenknooppunt hub for the SOAP adapter: mutual TLS (a client
certificate from the test CA or no connection), SOAP 1.1 document/literal with the
three operations vangnet's schema module speaks (OphalenBerichten, BevestigenOntvangst,
VersturenBericht).

Written independently of ``connectors/schuldenknooppunt/soap_schema.py`` (XML built by
hand here, read with ElementTree) so the two check each other. Like the real hub, it
keeps a message until it is confirmed and hands it out again on every fetch until then,
and it deduplicates answers on their BerichtId.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from tests.fakes.https import FakeHandler, FakeServer, Fault, TestCA

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:vangnet:schuldenknooppunt:schuldregelen:v1"


def bericht(
    message_id: str,
    kind: str,
    date: str,
    *,
    organisation_code: str | None = None,
    client: str | None = None,
    shv: str | None = "SHV-1",
    invoices: list[str] | None = None,
    proposal: dict[str, str] | None = None,
    extra: str = "",
) -> str:
    """One <Bericht> as the hub sends it."""
    parts = [
        f"<skn:BerichtId>{escape(message_id)}</skn:BerichtId>",
        f"<skn:BerichtType>{escape(kind)}</skn:BerichtType>",
        f"<skn:Datum>{date}</skn:Datum>",
    ]
    if organisation_code:
        parts.append(f"<skn:Organisatiecode>{escape(organisation_code)}</skn:Organisatiecode>")
    if client:
        parts.append(f"<skn:KlantnummerSE>{escape(client)}</skn:KlantnummerSE>")
    if shv:
        parts.append(f"<skn:KlantnummerSHV>{escape(shv)}</skn:KlantnummerSHV>")
    parts.append("<skn:OrganisatieSHV>Gemeente Voorbeeld</skn:OrganisatieSHV>")
    if invoices:
        parts.append(
            "<skn:Vorderingen>"
            + "".join(
                f"<skn:Vordering><skn:Factuurnummer>{escape(i)}</skn:Factuurnummer></skn:Vordering>"
                for i in invoices
            )
            + "</skn:Vorderingen>"
        )
    if proposal:
        parts.append(
            "<skn:Voorstel>"
            + "".join(f"<skn:{k}>{escape(v)}</skn:{k}>" for k, v in proposal.items())
            + "</skn:Voorstel>"
        )
    return "<skn:Bericht>" + "".join(parts) + extra + "</skn:Bericht>"


def envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:skn="{NS}"><soap:Body>{inner}'
        "</soap:Body></soap:Envelope>"
    ).encode()


@dataclass
class Hub:
    organisation_code: str = "WOONCORP"
    waiting: dict[str, str] = field(default_factory=dict)  # BerichtId -> <Bericht> xml
    later: list[tuple[int, str, str]] = field(default_factory=list)  # (after fetch n, id, xml)
    confirmed: list[str] = field(default_factory=list)
    answers: dict[str, ET.Element] = field(default_factory=dict)  # BerichtId -> Bericht
    answer_posts: int = 0
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, message_id: str, xml: str, after_fetch: int = 0) -> None:
        """A message for the creditor, visible from fetch number ``after_fetch`` + 1."""
        with self.lock:
            if after_fetch:
                self.later.append((after_fetch, message_id, xml))
            else:
                self.waiting[message_id] = xml


class HubHandler(FakeHandler):
    server: HubServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.fault():
            return
        hub = self.server.hub
        body = self.body()
        self.server.requests.append(("POST", self.path))
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return self._fault("soap:Client", "request is not XML")
        op = root.find(f"{{{SOAP}}}Body/*")
        if op is None:
            return self._fault("soap:Client", "empty body")
        name = op.tag.split("}")[-1]
        code = op.findtext(f"{{{NS}}}Organisatiecode")
        if code != hub.organisation_code:
            return self._fault("soap:Client", f"unknown organisation {code}")
        with hub.lock:
            if name == "OphalenBerichten":
                hub.fetches += 1
                for n, mid, xml in list(hub.later):
                    if hub.fetches > n:
                        hub.waiting[mid] = xml
                        hub.later.remove((n, mid, xml))
                inner = "".join(hub.waiting.values())
                return self._ok(
                    f"<skn:OphalenBerichtenResponse>{inner}</skn:OphalenBerichtenResponse>"
                )
            if name == "BevestigenOntvangst":
                ids = [e.text or "" for e in op.findall(f"{{{NS}}}BerichtId")]
                n = 0
                for i in ids:
                    if hub.waiting.pop(i, None) is not None:
                        hub.confirmed.append(i)
                        n += 1
                return self._ok(
                    f"<skn:BevestigenOntvangstResponse><skn:Bevestigd>{n}</skn:Bevestigd>"
                    "</skn:BevestigenOntvangstResponse>"
                )
            if name == "VersturenBericht":
                b = op.find(f"{{{NS}}}Bericht")
                mid = b.findtext(f"{{{NS}}}BerichtId") if b is not None else None
                if b is None or not mid:
                    return self._fault("soap:Client", "Bericht without BerichtId")
                hub.answer_posts += 1
                hub.answers.setdefault(mid, b)  # the same id twice is one answer
                return self._ok(
                    "<skn:VersturenBerichtResponse><skn:Ontvangen>true</skn:Ontvangen>"
                    "</skn:VersturenBerichtResponse>"
                )
        return self._fault("soap:Client", f"unknown operation {name}")

    def _ok(self, inner: str) -> None:
        self.send_raw(200, envelope(inner), "text/xml; charset=utf-8")

    def _fault(self, code: str, text: str) -> None:
        self.send_raw(
            500,
            envelope(
                f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{escape(text)}"
                "</faultstring></soap:Fault>"
            ),
            "text/xml; charset=utf-8",
        )

    def provider_fault(self, f: Fault) -> bool:
        if f.kind == "500":
            self._fault("soap:Server", "hub busy")
            return True
        if f.kind == "malformed":
            self.send_raw(200, b"<not-soap", "text/xml")
            return True
        if f.kind == "429":
            self.send_raw(429, b"", "text/plain", {"Retry-After": "1"})
            return True
        return False


class HubServer(FakeServer):
    def __init__(self, ca: TestCA, hub: Hub | None = None) -> None:
        super().__init__(HubHandler, ca, require_client_cert=True)
        self.hub = hub or Hub()

    def answer(self, message_id: str) -> dict[str, Any]:
        """An answer as plain data: its fields and its claims."""
        b = self.hub.answers[message_id]
        flat = {e.tag.split("}")[-1]: e.text for e in b if len(e) == 0}
        flat["claims"] = [
            {e.tag.split("}")[-1]: e.text for e in v}
            for v in b.findall(f"{{{NS}}}Vorderingen/{{{NS}}}Vordering")
        ]
        return flat


def exchange_config(
    server: HubServer, ca: TestCA, cert: Any, key: Any, **extra: Any
) -> dict[str, Any]:
    """The creditor file's ``debt_help.exchange`` for this hub: the SOAP route with the
    client certificate and key from files, the test CA for the hub's certificate."""
    return {
        "kind": "soap",
        "endpoint": server.url + "/schuldregelen",
        "organisation_code": server.hub.organisation_code,
        "client_cert": {"file": str(cert)},
        "client_key": {"file": str(key)},
        "ca_bundle": str(ca.ca_pem),
        **extra,
    }
