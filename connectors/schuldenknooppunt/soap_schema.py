"""The SOAP message schema of the system link, in one module.

The Schuldenknooppunt's WSDLs come in a toolkit on request and are not public
(DOMAIN.md). This module is vangnet's stand-in: SOAP 1.1, document/literal, three
operations, element names taken from the message fields the hub documents publicly
(BerichtId, BerichtType, KlantnummerSE, KlantnummerSHV, TypeSchuldregeling, claims
with the creditor's invoice numbers). When the toolkit is at hand, this file is the one
to replace: the adapter (``soap.py``) only calls the five functions below, and the
namespace and endpoint URL are configuration.

    fetch_request(code)           -> envelope asking for waiting messages
    confirm_request(code, ids)    -> envelope confirming receipt of messages
    send_request(code, reply)     -> envelope carrying one answer
    parse_messages(xml)           -> [InMessage | MessageError] from a fetch response
    parse_ack(xml, operation)     -> the count or flag in a confirm/send response

Parsing is safe: no DTDs, no entities, no network, a size limit, and a SOAP Fault is
raised as ``SoapFault`` with its code.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from connectors.schuldenknooppunt.messages import (
    OUT_TYPES,
    InMessage,
    MessageError,
    Proposal,
    Reply,
    Unreadable,
    canonical_type,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DEFAULT_NAMESPACE = "urn:vangnet:schuldenknooppunt:schuldregelen:v1"
MAX_BYTES = 20 * 1024 * 1024
ACTIONS = {
    "fetch": "OphalenBerichten",
    "confirm": "BevestigenOntvangst",
    "send": "VersturenBericht",
}


class SoapFault(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"SOAP fault {code}: {text}")
        self.code = code
        self.text = text

    @property
    def server_side(self) -> bool:
        return self.code.split(":")[-1].lower() in ("server", "receiver")


def _envelope(ns: str, operation: str, fill: Any) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "skn": ns})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    op = etree.SubElement(body, f"{{{ns}}}{operation}")
    fill(op)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _sub(parent: Any, ns: str, name: str, value: Any) -> Any:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if value is not None:
        el.text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return el


def _euros(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def fetch_request(code: str, ns: str = DEFAULT_NAMESPACE) -> bytes:
    return _envelope(ns, ACTIONS["fetch"], lambda op: _sub(op, ns, "Organisatiecode", code))


def confirm_request(code: str, ids: list[str], ns: str = DEFAULT_NAMESPACE) -> bytes:
    def fill(op: Any) -> None:
        _sub(op, ns, "Organisatiecode", code)
        for i in ids:
            _sub(op, ns, "BerichtId", i)

    return _envelope(ns, ACTIONS["confirm"], fill)


def send_request(code: str, reply: Reply, ns: str = DEFAULT_NAMESPACE) -> bytes:
    def fill(op: Any) -> None:
        _sub(op, ns, "Organisatiecode", code)
        b = _sub(op, ns, "Bericht", None)
        _sub(b, ns, "BerichtId", reply.reply_id)
        _sub(b, ns, "BerichtType", OUT_TYPES[reply.type])
        _sub(b, ns, "Datum", reply.created_on)
        if reply.in_reply_to:
            _sub(b, ns, "InAntwoordOp", reply.in_reply_to)
        if reply.client_number:
            _sub(b, ns, "KlantnummerSE", reply.client_number)
        if reply.shv_client_number:
            _sub(b, ns, "KlantnummerSHV", reply.shv_client_number)
        if reply.claims:
            claims = _sub(b, ns, "Vorderingen", None)
            for c in reply.claims:
                v = _sub(claims, ns, "Vordering", None)
                _sub(v, ns, "KlantnummerSE", c.client_number)
                _sub(v, ns, "Factuurnummer", c.invoice_number)
                if c.shv_invoice_number:
                    _sub(v, ns, "FactuurnummerSHV", c.shv_invoice_number)
                _sub(v, ns, "SoortSchuld", c.debt_type)
                _sub(v, ns, "DatumOntstaan", c.arisen_on)
                _sub(v, ns, "OorspronkelijkBedrag", _euros(c.original_cents))
                _sub(v, ns, "Hoofdsom", _euros(c.principal_cents))
                _sub(v, ns, "Kosten", _euros(c.costs_cents))
                _sub(v, ns, "Rente", _euros(c.interest_cents))
        if reply.accepted is not None:
            _sub(b, ns, "Akkoord", "true" if reply.accepted else "false")
        if reply.reason:
            _sub(b, ns, "Reden", reply.reason)

    return _envelope(ns, ACTIONS["send"], fill)


# ------------------------------------------------------------------------- parsing
def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _root(data: bytes) -> Any:
    if len(data) > MAX_BYTES:
        raise MessageError(f"response of {len(data)} bytes exceeds the {MAX_BYTES} limit")
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise MessageError("DOCTYPE/ENTITY declarations are refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise MessageError(f"line {exc.lineno}: {exc.msg}") from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise MessageError("not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) == 0:
        raise MessageError("SOAP envelope without a body")
    fault = body.find(f"{{{SOAP_ENV}}}Fault")
    if fault is not None:
        raise SoapFault(fault.findtext("faultcode") or "?", fault.findtext("faultstring") or "")
    return body[0]


def _text(el: Any, ns: str, *path: str) -> str | None:
    for name in path:
        if el is None:
            return None
        el = el.find(f"{{{ns}}}{name}")
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _date(v: str | None, what: str) -> dt.date | None:
    if v is None:
        return None
    try:
        return dt.date.fromisoformat(v[:10])
    except ValueError:
        raise MessageError(f"{what}: {v!r} is not a date (YYYY-MM-DD)") from None


def _cents(v: str | None, what: str) -> int | None:
    if v is None:
        return None
    try:
        return int((Decimal(v.replace(",", ".")) * 100).to_integral_value())
    except InvalidOperation:
        raise MessageError(f"{what}: {v!r} is not an amount") from None


def _message(b: Any, ns: str) -> InMessage:
    mid = _text(b, ns, "BerichtId")
    if not mid:
        raise MessageError("Bericht without BerichtId")
    try:
        kind = canonical_type(_text(b, ns, "BerichtType"))
    except MessageError as exc:
        raise MessageError(f"{mid}: {exc}") from None
    sent_on = _date(_text(b, ns, "Datum"), f"{mid}: Datum")
    if sent_on is None:
        raise MessageError(f"{mid}: Datum missing")
    proposal = None
    if b.find(f"{{{ns}}}Voorstel") is not None:
        pct = _text(b, ns, "Voorstel", "Percentage")
        term = _text(b, ns, "Voorstel", "Looptijd")
        try:
            proposal = Proposal(
                percentage=float(pct.replace(",", ".")) if pct else None,
                amount_cents=_cents(_text(b, ns, "Voorstel", "Bedrag"), f"{mid}: Bedrag"),
                term_months=int(term) if term else None,
                first_payment=_date(
                    _text(b, ns, "Voorstel", "Ingangsdatum"), f"{mid}: Ingangsdatum"
                ),
            )
        except ValueError as exc:
            raise MessageError(f"{mid}: Voorstel: {exc}") from None
    numbers = [
        (el.text or "").strip()
        for el in b.iterfind(f"{{{ns}}}Vorderingen/{{{ns}}}Vordering/{{{ns}}}Factuurnummer")
        if (el.text or "").strip()
    ]
    return InMessage(
        message_id=mid,
        type=kind,
        sent_on=sent_on,
        creditor_code=_text(b, ns, "Organisatiecode"),
        client_number=_text(b, ns, "KlantnummerSE"),
        shv_client_number=_text(b, ns, "KlantnummerSHV"),
        organisation=_text(b, ns, "OrganisatieSHV"),
        name=_text(b, ns, "Client", "Naam"),
        birth_date=_date(_text(b, ns, "Client", "Geboortedatum"), f"{mid}: Geboortedatum"),
        postcode=_text(b, ns, "Client", "Postcode"),
        house_number=_text(b, ns, "Client", "Huisnummer"),
        bsn=_text(b, ns, "Client", "BSN"),
        scheme=_text(b, ns, "TypeSchuldregeling"),
        invoice_numbers=numbers,
        proposal=proposal,
        text=_text(b, ns, "Toelichting"),
        in_reply_to=_text(b, ns, "InAntwoordOp"),
    )


def parse_messages(data: bytes, ns: str = DEFAULT_NAMESPACE) -> list[InMessage | Unreadable]:
    """Each Bericht of a fetch response; one that cannot be read comes back as
    ``Unreadable`` (with its BerichtId where it had one), so the rest still count."""
    op = _root(data)
    if op.tag != f"{{{ns}}}{ACTIONS['fetch']}Response":
        raise MessageError(f"unexpected response element {op.tag}")
    out: list[InMessage | Unreadable] = []
    for b in op.iterfind(f"{{{ns}}}Bericht"):
        try:
            out.append(_message(b, ns))
        except MessageError as exc:
            raw = etree.tostring(b, encoding="unicode")
            out.append(Unreadable(_text(b, ns, "BerichtId"), str(exc), raw))
    return out


def parse_ack(data: bytes, operation: str, ns: str = DEFAULT_NAMESPACE) -> str:
    op = _root(data)
    if op.tag != f"{{{ns}}}{ACTIONS[operation]}Response":
        raise MessageError(f"unexpected response element {op.tag}")
    return "".join(op.itertext()).strip()


__all__ = [
    "ACTIONS",
    "DEFAULT_NAMESPACE",
    "SoapFault",
    "confirm_request",
    "fetch_request",
    "parse_ack",
    "parse_messages",
    "send_request",
]
