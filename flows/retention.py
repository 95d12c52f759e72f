"""Retention: what was said to a debtor, and what a record held, is not kept forever.

After ``retention.content_days`` (default 90) the rendered messages (outbox files,
letter PDFs), the statement files as downloaded, the Wgs and Schuldenknooppunt export
files and the providers' event details are removed; after ``retention.quarantine_days``
(default 180) a resolved quarantine row keeps its rule and ids but no longer the values.
The ledger's contact rows stay (they are how a message is never sent twice), and so does
the audit log (ids only). A day whose messages are not all settled (sending, ambiguous)
is kept until they are. Each purge is audited with its counts.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import String, and_, cast, func, select, update

from connectors.letters.channel import LetterSettings
from connectors.outbox.channel import OutboxSettings
from flows.context import Ctx
from ledger import schema as s
from ledger.store import audit

UNSETTLED = ("planned", "sending", "ambiguous")


def _day(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def _dated_folders(root: Path, before: dt.date, keep: set[dt.date]) -> int:
    """Remove ``root/<YYYY-MM-DD>/`` folders older than ``before`` (not those in ``keep``)."""
    n = 0
    if not root.is_dir():
        return 0
    for sub in root.iterdir():
        day = _day(sub.name)
        if sub.is_dir() and day is not None and day < before and day not in keep:
            n += sum(1 for f in sub.rglob("*") if f.is_file())
            shutil.rmtree(sub)
    return n


def _old_files(folder: Path, before: dt.datetime) -> int:
    n = 0
    if not folder.is_dir():
        return 0
    for f in folder.rglob("*"):
        if f.is_file() and dt.datetime.fromtimestamp(f.stat().st_mtime, dt.UTC) < before:
            f.unlink()
            n += 1
    return n


def purge(ctx: Ctx, actor: str = "retention") -> dict[str, int]:
    r = ctx.cfg.retention
    content_cut = ctx.today - dt.timedelta(days=r.content_days)
    content_moment = ctx.now - dt.timedelta(days=r.content_days)
    c = s.contacts
    with ctx.engine.connect() as conn:
        unsettled = {
            d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10])
            for d in conn.execute(
                select(func.date(c.c.send_after))
                .where(c.c.creditor_id == ctx.creditor_id, c.c.status.in_(UNSETTLED))
                .distinct()
            ).scalars()
            if d is not None
        }
    out = {"message_files": 0, "statement_files": 0, "export_files": 0}
    for name, ch in ctx.cfg.channels.items():
        if isinstance(ch, OutboxSettings):
            out["message_files"] += _dated_folders(
                ctx.cfg.path(ch.dir) / name, content_cut, unsettled
            )
        elif isinstance(ch, LetterSettings):
            out["message_files"] += _dated_folders(ctx.cfg.path(ch.dir), content_cut, unsettled)
    out["statement_files"] = _old_files(ctx.var_dir("statements"), content_moment)
    dh = ctx.cfg.debt_help
    folders = [ctx.cfg.path(dh.wgs.export_dir)]
    ex = dh.exchange
    if ex is not None and getattr(ex, "outbox_dir", None):
        folders.append(ctx.cfg.path(ex.outbox_dir))  # type: ignore[union-attr]
    for folder in folders:
        out["export_files"] += _old_files(folder, content_moment)
    q_cut = ctx.now - dt.timedelta(days=r.quarantine_days)
    e = s.contact_events
    q = s.quarantine
    with ctx.engine.begin() as conn:
        out["event_details"] = conn.execute(
            update(e)
            .where(
                e.c.creditor_id == ctx.creditor_id,
                e.c.occurred_at < content_moment,
                cast(e.c.detail, String) != "{}",
            )
            .values(detail={})
        ).rowcount
        resolved = conn.execute(
            select(q.c.id, q.c.failures).where(
                and_(
                    q.c.creditor_id == ctx.creditor_id,
                    q.c.status != "open",
                    q.c.resolved_at < q_cut,
                    cast(q.c.payload, String) != "{}",
                )
            )
        ).all()
        for qid, failures in resolved:
            bare = [{k: v for k, v in f.items() if k != "value"} for f in failures or []]
            conn.execute(update(q).where(q.c.id == qid).values(payload={}, failures=bare))
        out["quarantine_rows"] = len(resolved)
        audit(conn, ctx.creditor_id, actor, "retention.purged", ctx.creditor_id, dict(out))
    return out


def summary_line(out: dict[str, Any]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in out.items())


__all__ = ["purge", "summary_line"]
