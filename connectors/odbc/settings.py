"""Configuration of an ODBC source / write-back target."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.secrets import SecretRef


class OdbcEntity(BaseModel):
    """How to read one entity: a query with ``:watermark`` and ``:last_key`` parameters
    ordered by (watermark, key), and the mapping of result columns to canonical names."""

    model_config = ConfigDict(extra="forbid")

    query: str
    key: str = Field(description="result column holding the record id")
    watermark: str = Field(description="result column that grows when a record changes")
    columns: dict[str, str] = Field(description="canonical name -> result column")

    @field_validator("query")
    @classmethod
    def _params(cls, q: str) -> str:
        if ":watermark" not in q:
            raise ValueError(
                "the query must filter on :watermark (and :last_key) for incremental reads"
            )
        if "order by" not in q.lower():
            raise ValueError("the query must ORDER BY the watermark and key columns")
        return q


class OdbcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["odbc"] = "odbc"
    connection_string: str = Field(description="ODBC connection string without the password")
    password: SecretRef | None = None
    login_timeout_seconds: int = 15
    query_timeout_seconds: int = 120
    page_size: int = Field(5000, ge=1, le=1_000_000)
    text_encoding: str | None = Field(
        None,
        description="the encoding of the ERP's narrow text columns, e.g. cp1252 for a legacy ERP",
    )
    # executemany speed-up; never for the SQLite driver, which crashes with it
    fast_executemany: bool = False
    entities: dict[Literal["debtors", "invoices", "payments"], OdbcEntity]
    write_back: dict[str, str] = Field(
        default_factory=dict,
        description="entity -> UPDATE with named parameters; :record_id and :expected_version"
        " are always given, plus every written value",
    )

    @field_validator("connection_string")
    @classmethod
    def _no_password(cls, v: str) -> str:
        if re.search(r"(?i)\b(pwd|password)\s*=", v):
            raise ValueError(
                "put the password in `password:` (a secret reference), not in the connection string"
            )
        return v
