"""The Schuldenknooppunt exchange: the SOAP system link and the web portal's CSV route,
both behind the ``DebtHelpExchange`` port (ledger/ports.py)."""

from connectors.schuldenknooppunt.messages import (
    HOLD_KINDS,
    IN_TYPES,
    OUT_TYPES,
    ClaimLine,
    InMessage,
    MessageError,
    Proposal,
    Reply,
    Unreadable,
    canonical_type,
    reply_id,
)
from connectors.schuldenknooppunt.portal import PortalExchange
from connectors.schuldenknooppunt.settings import PortalExchangeSettings, SoapExchangeSettings
from connectors.schuldenknooppunt.soap import SoapExchange

__all__ = [
    "HOLD_KINDS",
    "IN_TYPES",
    "OUT_TYPES",
    "ClaimLine",
    "InMessage",
    "MessageError",
    "PortalExchange",
    "PortalExchangeSettings",
    "Proposal",
    "Reply",
    "SoapExchange",
    "SoapExchangeSettings",
    "Unreadable",
    "canonical_type",
    "reply_id",
]
