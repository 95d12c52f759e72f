"""References to secrets. Config files name a secret; they never hold one.

``block`` names a Prefect Secret block (resolved by the flows, the only place that may
import Prefect), ``env`` an environment variable, ``file`` a file outside the repository
(an SSH private key, say). Resolved values travel as ``SecretStr``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator


class SecretRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    block: str | None = None
    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("block", "env", "file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("name exactly one of: block (Prefect Secret block), env, file")
        return self

    def describe(self) -> str:
        return (
            f"block:{self.block}"
            if self.block
            else f"env:{self.env}"
            if self.env
            else f"file:{self.file}"
        )

    def resolve_local(self, base_dir: Path | None = None) -> SecretStr:
        """Resolve env/file references (a relative file is taken from ``base_dir``);
        block references are resolved by the flows, through Prefect."""
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        if self.file:
            path = Path(self.file).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if not path.is_file():
                raise LookupError(f"secret file {path} does not exist")
            return SecretStr(path.read_text())
        raise LookupError(f"secret {self.describe()} must be resolved through Prefect")


__all__ = ["SecretRef"]
