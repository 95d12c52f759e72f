"""Configuration of an Exact Online division as a source and write-back target."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.secrets import SecretRef

_PROP = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ENDPOINT = re.compile(r"^[a-z]+(/[A-Za-z]+)+$")


class ExactEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="a sync endpoint, e.g. sync/CRM/Accounts")
    columns: dict[str, str] = Field(description="canonical name -> Exact property")
    filter: str | None = Field(None, description="an extra OData condition, e.g. Status eq 'C'")

    @field_validator("endpoint")
    @classmethod
    def _sync(cls, v: str) -> str:
        if not _ENDPOINT.fullmatch(v) or not v.startswith("sync/"):
            raise ValueError("use a sync endpoint (sync/<Area>/<Entity>): they page by Timestamp")
        return v

    @field_validator("columns")
    @classmethod
    def _props(cls, v: dict[str, str]) -> dict[str, str]:
        for p in v.values():
            if not _PROP.fullmatch(p):
                raise ValueError(f"{p!r} is not an Exact Online property name")
        return v


class ExactWriteBack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(
        description="the CRUD endpoint to update, e.g. salesinvoice/SalesInvoices"
    )
    key: str = Field(description="the guid property used in the URL, e.g. InvoiceID")
    match: str = Field(description="the property holding our record id, e.g. InvoiceNumber")
    match_is_number: bool = True
    fields: dict[str, str] = Field(
        description="our value name (status, open_amount) -> Exact property"
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not _ENDPOINT.fullmatch(v):
            raise ValueError("an endpoint looks like area/Entity, e.g. salesinvoice/SalesInvoices")
        return v


class ExactOnlineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["exact_online"] = "exact_online"
    base_url: str = Field(
        "https://start.exactonline.nl", description="per country: .nl, .be, .co.uk, ..."
    )
    division: int
    client_id: SecretRef
    client_secret: SecretRef
    redirect_uri: str = Field(description="the app's registered redirect URI")
    timeout_seconds: float = 30
    max_retries: int = Field(3, ge=0, le=10)
    ca_bundle: str | None = Field(
        None, description="a private CA bundle (tests; not needed for Exact)"
    )
    entities: dict[Literal["debtors", "invoices", "payments"], ExactEntity]
    write_back: dict[str, ExactWriteBack] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("Exact Online is only reached over https://")
        return v.rstrip("/")
