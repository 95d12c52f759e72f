"""Configuration of the Schuldenknooppunt exchange (``debt_help.exchange`` in a creditor
file): the SOAP system link or the web portal's CSV files."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.schuldenknooppunt.soap_schema import DEFAULT_NAMESPACE
from connectors.secrets import SecretRef
from connectors.sftp.settings import SftpSettings


class SoapExchangeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["soap"] = "soap"
    endpoint: str = Field(description="https URL of the hub's Schuldregelen service")
    namespace: str = Field(DEFAULT_NAMESPACE, description="the toolkit WSDL's target namespace")
    organisation_code: str = Field(description="the creditor's code at the hub")
    client_cert: SecretRef = Field(description="PKIoverheid client certificate (PEM)")
    client_key: SecretRef = Field(description="its private key (PEM)")
    ca_bundle: str | None = Field(
        None, description="CA file for the hub's server certificate (default: system CAs)"
    )
    connect_timeout_seconds: float = 10
    read_timeout_seconds: float = 60


class PortalExchangeSettings(BaseModel):
    """The web portal route: its CSV downloads are put in ``inbox_dir`` (by hand or by an
    SFTP pick-up), answers are written to ``outbox_dir`` for upload."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["portal"] = "portal"
    organisation_code: str = "portal"
    inbox_dir: str = Field(description="folder with the portal's CSV downloads")
    outbox_dir: str = Field("outbox", description="folder for answer CSVs to upload")
    delimiter: str = ";"
    encoding: str = "utf-8-sig"
    sftp: SftpSettings | None = Field(
        None,
        description="fetch the downloads from this SFTP folder (remote_dir, pattern '*.csv')"
        " and put the answer files in upload_dir there",
    )
    upload_dir: str = Field("answers", description="remote folder for answer files (sftp)")

    @model_validator(mode="after")
    def _csv_pattern(self) -> PortalExchangeSettings:
        if self.sftp is not None and "pattern" not in self.sftp.model_fields_set:
            self.sftp = self.sftp.model_copy(update={"pattern": "*.csv"})
        return self


__all__ = ["PortalExchangeSettings", "SoapExchangeSettings"]
