"""``vangnet doctor``: every connection a creditor's configuration names, checked the
way the cycle will use it (reachability, login, host key, certificate, budget), as one
table. Nothing is written anywhere; secrets are resolved but never shown."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connectors.secrets import SecretRef
from flows.config import ConfigError, CreditorConfig, load, resolve_secret

STATUSES = ("ok", "warn", "fail")


@dataclass
class Check:
    component: str
    check: str
    status: str  # ok | warn | fail
    detail: str
    ms: int = 0


def secret_refs(model: Any, where: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Every secret reference in a configuration, with the field that holds it."""
    if isinstance(model, SecretRef):
        yield where, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from secret_refs(getattr(model, name), f"{where}.{name}" if where else name)
    elif isinstance(model, dict):
        for k, v in model.items():
            yield from secret_refs(v, f"{where}.{k}")
    elif isinstance(model, list | tuple):
        for i, v in enumerate(model):
            yield from secret_refs(v, f"{where}[{i}]")


def _attempt(
    component: str, check: str, fn: Callable[..., dict[str, str] | str], *args: Any
) -> Check:
    start = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the doctor reports every failure, it never stops
        msg = str(exc) or type(exc).__name__
        ms = int((time.perf_counter() - start) * 1000)
        return Check(component, check, "fail", msg.splitlines()[0][:300], ms)
    ms = int((time.perf_counter() - start) * 1000)
    if isinstance(out, str):
        return Check(component, check, "ok", out, ms)
    status = "fail" if "fail" in out else "warn" if "warn" in out else "ok"
    detail = out.get("fail") or out.get("warn") or ""
    detail = (
        f"{detail} ({out['detail']})"
        if detail and out.get("detail")
        else detail or out.get("detail", "")
    )
    return Check(component, check, status, detail, ms)


def _secret(cfg: CreditorConfig, where: str, ref: SecretRef) -> dict[str, str]:
    value = resolve_secret(ref, cfg.base_dir)
    assert value is not None
    out = {"detail": f"{ref.describe()} resolves ({len(value.get_secret_value())} characters)"}
    if ref.file:
        path = cfg.path(ref.file)
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            out["warn"] = f"{path} is readable by others: chmod 600"
    if where == "self_service.secret" and len(value.get_secret_value().encode()) < 32:
        out["fail"] = "the signing secret must be at least 32 bytes"
    return out


def _ledger(cfg: CreditorConfig) -> dict[str, str]:
    from ledger.store import dirty_tracking, make_engine, migration_state

    engine = make_engine(cfg.ledger_url())
    try:
        current, head = migration_state(engine)
        dialect = engine.dialect.name
        if current == head:
            with engine.connect() as conn:
                triggers = dirty_tracking(conn)
    finally:
        engine.dispose()
    if current is None:
        return {"detail": f"{dialect}, empty", "warn": "no tables yet: the first run creates them"}
    if current != head:
        return {"detail": f"{dialect} at {current}", "warn": f"the next run migrates to {head}"}
    if not triggers:
        return {
            "detail": f"{dialect} at {head}",
            "warn": "dirty-debtor triggers missing: every assessment is a full one"
            " (downgrade to 0008 and upgrade again to restore them)",
        }
    return {
        "detail": f"{dialect}, schema at the newest revision ({head}), change triggers in place"
    }


def _writable(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".vangnet-doctor-{os.getpid()}"
    probe.write_text("")
    probe.unlink()
    return f"{folder} is writable"


def _sftp(ctx: Any, s: Any) -> dict[str, str]:
    from flows.stages import sftp_client

    return sftp_client(ctx, s).probe()


def _odbc(ctx: Any, name: str) -> dict[str, str]:
    from flows.stages import reader_for

    reader: Any = reader_for(ctx, name)
    return dict(reader.probe())


def _salesforce(ctx: Any, s: Any) -> dict[str, str]:
    from flows.stages import _salesforce_client

    return _salesforce_client(ctx, s).probe()


def _exact(ctx: Any, name: str) -> dict[str, str]:
    from flows.stages import exact_client

    return exact_client(ctx, name).probe()


def _provider(ctx: Any, name: str) -> dict[str, str]:
    from flows.stages import _channel

    channel: Any = _channel(ctx, name)
    return dict(channel.probe())


def _sources(cfg: CreditorConfig, ctx: Any, sftp_port: int | None) -> Iterator[Check]:
    for name, src in cfg.sources.items():
        label = f"source {name} ({src.kind})"
        if src.kind == "salesforce":
            yield _attempt(label, "login, API budget", _salesforce, ctx, src)
        elif src.kind == "exact_online":
            yield _attempt(label, "tokens, rate limits", _exact, ctx, name)
        elif src.kind == "odbc":
            yield _attempt(label, "driver, connect", _odbc, ctx, name)
        elif sftp_port is None and src.port == 0:
            yield Check(
                label,
                "host key, login, folder",
                "warn",
                "port 0: served by the demo for the length of a run only (--sftp-port)",
            )
        else:
            port = sftp_port or src.port
            yield _attempt(
                label, "host key, login, folder", _sftp, ctx, src.model_copy(update={"port": port})
            )


def _channels(cfg: CreditorConfig, ctx: Any) -> Iterator[Check]:
    from connectors.letters.channel import LetterSettings
    from connectors.outbox.channel import OutboxSettings

    for name, ch in cfg.channels.items():
        label = f"channel {name} ({ch.kind})"
        if isinstance(ch, OutboxSettings):
            yield _attempt(label, "folder", _writable, cfg.path(ch.dir))
        elif isinstance(ch, LetterSettings):
            if ch.print_provider is None:
                yield _attempt(label, "folder", _writable, cfg.path(ch.dir))
            else:
                yield _attempt(
                    label, "print provider host key, login", _sftp, ctx, ch.print_provider
                )
        else:
            yield _attempt(label, "key, budget", _provider, ctx, name)


def _debt_help(cfg: CreditorConfig, ctx: Any) -> Iterator[Check]:
    from connectors.schuldenknooppunt.settings import SoapExchangeSettings
    from flows.debt_help import exchange_for

    ex = cfg.debt_help.exchange
    if ex is None:
        return
    label = f"schuldenknooppunt ({ex.kind})"
    if isinstance(ex, SoapExchangeSettings):

        def soap() -> dict[str, str]:
            exchange = exchange_for(ctx)
            try:
                return exchange.probe()  # type: ignore[union-attr]
            finally:
                exchange.close()  # type: ignore[union-attr]

        yield _attempt(label, "mutual TLS, certificate", soap)
    elif ex.sftp is not None:
        yield _attempt(label, "portal SFTP host key, login", _sftp, ctx, ex.sftp)
    else:
        yield _attempt(label, "portal folder", _portal_dir, cfg.path(ex.inbox_dir))


def _portal_dir(inbox: Path) -> str:
    if not inbox.is_dir():
        raise FileNotFoundError(f"{inbox} does not exist: where do the portal downloads go?")
    return f"{inbox} holds {sum(1 for _ in inbox.glob('*.csv'))} download(s)"


def _prefect(pool: str) -> dict[str, str]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return {"detail": "no PREFECT_API_URL: runs use a local ephemeral server"}

    async def ask() -> dict[str, str]:
        async with get_client() as client:
            err = await client.api_healthcheck()
            if err is not None:
                return {"fail": f"{url} is not healthy: {err}"}
            try:
                await client.read_work_pool(pool)
            except Exception:  # noqa: BLE001 - ObjectNotFound, said plainly
                return {"detail": url, "warn": f"work pool {pool} does not exist yet"}
            return {"detail": f"{url} healthy; work pool {pool} exists"}

    return asyncio.run(ask())


def run_checks(
    config_path: str | Path, work_pool: str = "vangnet-process", sftp_port: int | None = None
) -> list[Check]:
    """Every check in order; ``sftp_port`` overrides the statement sources' port (as the
    cycle's does, for a loopback server)."""
    from flows.context import make_ctx

    try:
        cfg = load(config_path)
    except ConfigError as exc:
        return [Check("configuration", "load", "fail", str(exc))]
    checks = [Check("configuration", "load", "ok", f"{cfg.creditor.id} ({cfg.sha256[:12]})")]
    for where, ref in secret_refs(cfg):
        checks.append(_attempt(f"secret {where}", ref.describe(), _secret, cfg, where, ref))
    checks.append(_attempt("ledger", "connect, schema", _ledger, cfg))
    ctx = make_ctx(str(config_path))
    checks += _sources(cfg, ctx, sftp_port)
    checks += _channels(cfg, ctx)
    checks += _debt_help(cfg, ctx)
    checks.append(_attempt("prefect", "API, work pool", _prefect, work_pool))
    return checks


def render(checks: list[Check]) -> str:
    """A plain table that reads well in a terminal and in a ticket."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    w1 = max(len(c.component) for c in checks)
    w2 = max(len(c.check) for c in checks)
    lines = [f"{'':4}  {'component':<{w1}}  {'check':<{w2}}  {'ms':>5}  detail"]
    for c in checks:
        lines.append(
            f"{marks[c.status]}  {c.component:<{w1}}  {c.check:<{w2}}  {c.ms:>5}  {c.detail}"
        )
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    lines.append(f"\n{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)")
    return "\n".join(lines)


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
