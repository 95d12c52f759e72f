"""Configuration of an SFTP drop."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.secrets import SecretRef


class SftpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sftp"] = "sftp"
    host: str
    port: int = Field(22, ge=0, le=65535)
    username: str
    password: SecretRef | None = None
    private_key: SecretRef | None = None
    host_key_fingerprint: str | None = Field(
        None, description="SHA256:... as ssh-keygen -lf prints it"
    )
    known_hosts: str | None = Field(
        None, description="path of a known_hosts file holding the host key"
    )
    remote_dir: str = "incoming"
    pattern: str = "*.xml"
    processed_dir: str = "processed"
    failed_dir: str = "failed"
    format: Literal["camt053", "mt940", "csv", "auto"] = "auto"
    csv: dict[str, Any] | None = Field(
        None,
        description="the column mapping of a CSV payment export (validated by the config loader)",
    )
    checksum: Literal["none", "sha256"] = Field(
        "none", description="sha256: every file has a <name>.sha256 beside it, checked before use"
    )
    connect_timeout_seconds: float = 15
    banner_timeout_seconds: float = 15
    auth_timeout_seconds: float = 15
    max_file_bytes: int = 50 * 1024 * 1024

    @model_validator(mode="after")
    def _pinned_and_auth(self) -> SftpSettings:
        if not (self.host_key_fingerprint or self.known_hosts):
            raise ValueError("pin the server's host key: set host_key_fingerprint or known_hosts")
        if not (self.password or self.private_key):
            raise ValueError("set password or private_key (a secret reference)")
        if self.format == "csv" and self.csv is None:
            raise ValueError("format csv needs a `csv:` column mapping")
        return self
