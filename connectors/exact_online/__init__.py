"""Exact Online connector (package ``exactonline``): accounts and invoices in per
division from the sync endpoints, statuses out with PUT, OAuth 2.0 tokens kept in the
ledger so that several workers share the rotating refresh token safely.

Docs: Exact Online REST API reference (https://start.exactonline.nl/docs/HlpRestAPIResources.aspx),
OAuth 2.0 and API limits (60 calls a minute and 5,000 a day per division, X-RateLimit-*
headers with resets in epoch milliseconds). See docs/connectors/exact-online.md.
"""

from connectors.exact_online.client import ExactClient, ExactReader, ExactWriter, TokenStore
from connectors.exact_online.settings import ExactEntity, ExactOnlineSettings, ExactWriteBack

__all__ = [
    "ExactClient",
    "ExactEntity",
    "ExactOnlineSettings",
    "ExactReader",
    "ExactWriteBack",
    "ExactWriter",
    "TokenStore",
]
