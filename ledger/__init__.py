"""vangnet's ledger: canonical records, ports and the store. Imports nothing of ours."""

from ledger import schema
from ledger.records import (
    DEBTOR_COLUMNS,
    ERP_PAYMENT_COLUMNS,
    INVOICE_COLUMNS,
    PAYMENT_COLUMNS,
    OutboundMessage,
    Receipt,
    WriteBack,
    WriteResult,
)
from ledger.store import audit, frame, migrate, open_ledger, upsert, utcnow

__all__ = [
    "DEBTOR_COLUMNS",
    "ERP_PAYMENT_COLUMNS",
    "INVOICE_COLUMNS",
    "PAYMENT_COLUMNS",
    "OutboundMessage",
    "Receipt",
    "WriteBack",
    "WriteResult",
    "audit",
    "frame",
    "migrate",
    "open_ledger",
    "schema",
    "upsert",
    "utcnow",
]
