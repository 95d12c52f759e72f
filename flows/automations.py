"""``vangnet automations install``: the recipe in deployments/automations.yaml, wired to
one notification block, created or replaced on the Prefect server by name."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

RECIPE = Path(__file__).resolve().parents[1] / "deployments" / "automations.yaml"


def load_recipe(path: Path = RECIPE) -> list[dict[str, Any]]:
    raw = yaml.safe_load(path.read_text())
    autos = raw.get("automations") if isinstance(raw, dict) else None
    if not isinstance(autos, list) or not autos:
        raise ValueError(f"{path}: expected a list under 'automations'")
    return autos


async def _install(autos: list[dict[str, Any]], notify: str) -> list[dict[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    slug, _, name = notify.partition("/")
    if not name:
        raise ValueError("name the block as <block-type-slug>/<block-name>, e.g. slack-webhook/ops")
    out = []
    async with get_client() as client:
        block = await client.read_block_document_by_name(name, slug)
        for spec in autos:
            spec = {**spec, "actions": [dict(a) for a in spec.get("actions", [])]}
            for action in spec["actions"]:
                if action.get("type") == "send-notification":
                    action["block_document_id"] = str(block.id)
            automation = AutomationCore.model_validate(spec)
            replaced = await client.read_automations_by_name(automation.name)
            for old in replaced:
                await client.delete_automation(old.id)
            new_id = await client.create_automation(automation)
            out.append(
                {
                    "automation": automation.name,
                    "status": "replaced" if replaced else "created",
                    "id": str(new_id),
                }
            )
    return out


def install(notify: str, path: Path = RECIPE) -> list[dict[str, str]]:
    return asyncio.run(_install(load_recipe(path), notify))


__all__ = ["RECIPE", "install", "load_recipe"]
