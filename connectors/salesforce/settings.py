"""Configuration of a Salesforce org as a source and write-back target."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.secrets import SecretRef

_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_]*(__[cr])?$|^[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*(__[cr])?$"
)


def _api_name(v: str) -> str:
    if not _NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a Salesforce API name (letters, digits, _, optional __c)")
    return v


class SalesforceEntity(BaseModel):
    """One entity read from one sObject: canonical name -> field API name."""

    model_config = ConfigDict(extra="forbid")

    object: str = Field(description="sObject API name, e.g. Account or Invoice__c")
    columns: dict[str, str] = Field(
        description="canonical name -> field API name (relationship paths allowed)"
    )
    where: str | None = Field(None, description="an extra SOQL condition, e.g. IsDeleted = false")

    @field_validator("object")
    @classmethod
    def _obj(cls, v: str) -> str:
        return _api_name(v)

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for f in v.values():
            _api_name(f)
        return v


class SalesforceWriteBack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: str
    external_id_field: str = Field(description="the external id field holding our record id")
    fields: dict[str, str] = Field(
        description="our value name (status, open_amount) -> field API name"
    )

    @field_validator("object", "external_id_field")
    @classmethod
    def _names(cls, v: str) -> str:
        return _api_name(v)


class SalesforceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["salesforce"] = "salesforce"
    instance_url: str = Field(description="https://<my-domain>.my.salesforce.com")
    token_url: str = Field(
        "https://login.salesforce.com/services/oauth2/token",
        description="OAuth 2.0 token endpoint (client credentials flow of a connected app)",
    )
    client_id: SecretRef
    client_secret: SecretRef
    api_version: str = "59.0"
    timeout_seconds: float = 30
    max_retries: int = Field(4, ge=0, le=10)
    max_backoff_seconds: float = 60
    page_size: int = Field(2000, ge=1, le=100_000, description="records per committed page")
    bulk_threshold: int = Field(
        50_000,
        ge=1,
        description="more changed records than this: read with a Bulk API 2.0 query job",
    )
    bulk_poll_seconds: float = Field(2.0, gt=0, description="how often a bulk job's state is asked")
    bulk_write_threshold: int = Field(
        2000, ge=1, description="more changes than this in a write-back: a Bulk API 2.0 upsert job"
    )
    ca_bundle: str | None = Field(
        None, description="a private CA bundle (ignores REQUESTS_CA_BUNDLE)"
    )
    entities: dict[Literal["debtors", "invoices", "payments"], SalesforceEntity]
    write_back: dict[str, SalesforceWriteBack] = Field(default_factory=dict)

    @field_validator("instance_url", "token_url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("Salesforce is only reached over https://")
        return v.rstrip("/")
