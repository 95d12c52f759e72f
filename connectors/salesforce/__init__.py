"""Salesforce connector (simple-salesforce): Account/Contact and the creditor's invoice
object in, collection statuses out by external id.

Docs: REST API Developer Guide, "Query" / "Query More Results" and "Upsert Records Using
sObject Collections" (https://developer.salesforce.com/docs/platform/api-rest/guide/).
See docs/connectors/salesforce.md.
"""

from connectors.salesforce.client import SalesforceClient, SalesforceReader, SalesforceWriter
from connectors.salesforce.settings import SalesforceEntity, SalesforceSettings, SalesforceWriteBack

__all__ = [
    "SalesforceClient",
    "SalesforceEntity",
    "SalesforceReader",
    "SalesforceSettings",
    "SalesforceWriteBack",
    "SalesforceWriter",
]
