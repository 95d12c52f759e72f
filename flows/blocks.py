"""``vangnet blocks register``: the Prefect Secret blocks a creditor's configuration
names, created on the Prefect server from environment variables or files.

Names are documented, not guessed: the configuration says ``{block: <name>}`` at each
secret field, and docs/deployment.md proposes ``<creditor-id>-<source>-<what>``. A
value comes from ``VANGNET_SECRET_<NAME>`` (upper case, dashes and dots as
underscores) or from the file ``<dir>/<name>``; it is never printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from flows.config import CreditorConfig
from flows.doctor import secret_refs


@dataclass
class Registered:
    field: str
    block: str
    status: str  # present | created | replaced | missing
    source: str = ""


def env_name(block: str) -> str:
    return "VANGNET_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", block).upper()


def _value(block: str, from_env: bool, from_dir: Path | None) -> tuple[str, str] | None:
    if from_env and env_name(block) in os.environ:
        return os.environ[env_name(block)], f"env {env_name(block)}"
    if from_dir is not None and (from_dir / block).is_file():
        return (from_dir / block).read_text(), f"file {from_dir / block}"
    return None


def _exists(name: str) -> bool:
    from prefect.blocks.system import Secret

    try:
        Secret.load(name)
    except ValueError:
        return False
    return True


def register(
    cfg: CreditorConfig,
    from_env: bool = True,
    from_dir: Path | None = None,
    overwrite: bool = False,
) -> list[Registered]:
    """Create each named Secret block that is missing (or all, with ``overwrite``)."""
    from prefect.blocks.system import Secret

    out: list[Registered] = []
    seen: set[str] = set()
    for where, ref in secret_refs(cfg):
        if not ref.block or ref.block in seen:
            continue
        seen.add(ref.block)
        present = _exists(ref.block)
        if present and not overwrite:
            out.append(Registered(where, ref.block, "present"))
            continue
        found = _value(ref.block, from_env, from_dir)
        if found is None:
            status = "present" if present else "missing"
            out.append(Registered(where, ref.block, status, f"set {env_name(ref.block)}"))
            continue
        value, source = found
        Secret(value=value).save(ref.block, overwrite=present)
        out.append(Registered(where, ref.block, "replaced" if present else "created", source))
    return out


__all__ = ["Registered", "env_name", "register"]
