"""The web-portal route: small creditors download the hub's messages from the
Schuldenknooppunt portal as CSV files and upload their answers as CSV.

The portal's exact CSV layout is not public (DOMAIN.md). The columns below are
vangnet's assumption, kept in this one module; a creditor whose download differs maps
nothing else. One row per message, ``;``-separated, UTF-8 with or without BOM:

    BerichtId; BerichtType; Datum; KlantnummerSE; KlantnummerSHV; OrganisatieSHV; Naam;
    Geboortedatum; Postcode; Huisnummer; BSN; TypeSchuldregeling; Factuurnummers
    (comma-separated); Percentage; Bedrag; Looptijd (months); Ingangsdatum; Toelichting

Only BerichtId, BerichtType and Datum are required. Dates as 2026-11-23 or 23-11-2026,
amounts as 1234,56 or 1234.56.

Answers go to ``outbox_dir``: ``saldoverzoek-antwoord-YYYYMMDD.csv`` (one row per claim,
the columns of a Saldoverzoek antwoord) and ``antwoorden-YYYYMMDD.csv`` for the other
answer types. Writing is idempotent per answer id (a resend after a crash adds nothing)
and atomic (a temporary file renamed into place). Text cells that a spreadsheet would
run as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from connectors.durable import Folders
from connectors.schuldenknooppunt.messages import (
    OUT_TYPES,
    InMessage,
    MessageError,
    Proposal,
    Reply,
    Unreadable,
    canonical_type,
)
from connectors.schuldenknooppunt.settings import PortalExchangeSettings
from connectors.sftp.client import SftpClient
from transforms.spreadsheet import safe_cell

SALDO_COLUMNS = (
    "AntwoordId",
    "InAntwoordOp",
    "KlantnummerSHV",
    "KlantnummerSE",
    "Factuurnummer",
    "FactuurnummerSHV",
    "SoortSchuld",
    "DatumOntstaan",
    "OorspronkelijkBedrag",
    "Hoofdsom",
    "Kosten",
    "Rente",
)
ANSWER_COLUMNS = (
    "AntwoordId",
    "BerichtType",
    "InAntwoordOp",
    "KlantnummerSHV",
    "KlantnummerSE",
    "Akkoord",
    "Reden",
)
MAX_FILE_BYTES = 20 * 1024 * 1024


def _date(v: str | None, what: str) -> dt.date | None:
    v = (v or "").strip()
    if not v:
        return None
    for fmt in ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(v, fmt).date()
        except ValueError:
            continue
    raise MessageError(f"{what}: {v!r} is not a date (YYYY-MM-DD or DD-MM-YYYY)")


def _cents(v: str | None, what: str) -> int | None:
    v = (v or "").strip()
    if not v:
        return None
    if "," in v:
        v = v.replace(".", "").replace(",", ".")
    try:
        return int((Decimal(v) * 100).to_integral_value())
    except InvalidOperation:
        raise MessageError(f"{what}: {v!r} is not an amount") from None


def _opt(row: dict[str, str | None], key: str) -> str | None:
    v = row.get(key)
    return v.strip() or None if isinstance(v, str) else None


def row_to_message(row: dict[str, str | None]) -> InMessage:
    mid = _opt(row, "BerichtId")
    if not mid:
        raise MessageError("row without BerichtId")
    try:
        kind = canonical_type(_opt(row, "BerichtType"))
        sent_on = _date(_opt(row, "Datum"), "Datum")
        if sent_on is None:
            raise MessageError("Datum missing")
        proposal = None
        if any(_opt(row, k) for k in ("Percentage", "Bedrag", "Looptijd", "Ingangsdatum")):
            pct, term = _opt(row, "Percentage"), _opt(row, "Looptijd")
            proposal = Proposal(
                percentage=float(pct.replace(",", ".")) if pct else None,
                amount_cents=_cents(_opt(row, "Bedrag"), "Bedrag"),
                term_months=int(term) if term else None,
                first_payment=_date(_opt(row, "Ingangsdatum"), "Ingangsdatum"),
            )
        numbers = [
            n.strip() for n in (_opt(row, "Factuurnummers") or "").replace(";", ",").split(",")
        ]
        return InMessage(
            message_id=mid,
            type=kind,
            sent_on=sent_on,
            client_number=_opt(row, "KlantnummerSE"),
            shv_client_number=_opt(row, "KlantnummerSHV"),
            organisation=_opt(row, "OrganisatieSHV"),
            name=_opt(row, "Naam"),
            birth_date=_date(_opt(row, "Geboortedatum"), "Geboortedatum"),
            postcode=_opt(row, "Postcode"),
            house_number=_opt(row, "Huisnummer"),
            bsn=_opt(row, "BSN"),
            scheme=_opt(row, "TypeSchuldregeling"),
            invoice_numbers=[n for n in numbers if n],
            proposal=proposal,
            text=_opt(row, "Toelichting"),
        )
    except (MessageError, ValueError) as exc:
        raise MessageError(f"{mid}: {exc}") from None


def _euros(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}".replace(".", ",")


class PortalExchange:
    """``DebtHelpExchange`` over the portal's CSV files."""

    def __init__(self, settings: PortalExchangeSettings, base_dir: Path) -> None:
        self.settings = settings
        self.inbox = (base_dir / settings.inbox_dir).resolve()
        self.outbox = (base_dir / settings.outbox_dir).resolve()
        self._pending: dict[Path, set[str]] = {}
        self._unusable: set[Path] = set()
        self.written: set[Path] = set()  # answer files written since the last upload

    def fetch_inbox(self) -> Sequence[InMessage | Unreadable]:
        out: list[InMessage | Unreadable] = []
        self._pending.clear()
        self._unusable.clear()
        if not self.inbox.is_dir():
            return out
        for f in sorted(p for p in self.inbox.iterdir() if p.suffix.lower() == ".csv"):
            ids: set[str] = set()
            try:
                if f.stat().st_size > MAX_FILE_BYTES:
                    raise MessageError(f"{f.name} is larger than {MAX_FILE_BYTES} bytes")
                text = f.read_bytes().decode(self.settings.encoding)
            except (MessageError, UnicodeDecodeError) as exc:
                why = str(exc) if isinstance(exc, MessageError) else f"{f.name}: not {exc.encoding}"
                out.append(Unreadable(f"file:{f.name}", why, ""))
                ids.add(f"file:{f.name}")
                self._unusable.add(f)
                self._pending[f] = ids
                continue
            reader = csv.DictReader(io.StringIO(text), delimiter=self.settings.delimiter)
            for n, row in enumerate(reader, start=2):
                try:
                    msg = row_to_message(row)
                    out.append(msg)
                    ids.add(msg.message_id)
                except MessageError as exc:
                    mid = _opt(row, "BerichtId") or f"file:{f.name}:line{n}"
                    raw = self.settings.delimiter.join(str(v or "") for v in row.values())
                    out.append(Unreadable(mid, f"{f.name} line {n}: {exc}", raw))
                    ids.add(mid)
            self._pending[f] = ids
        return out

    def acknowledge(self, message_ids: Sequence[str]) -> None:
        """A file moves to processed/ (or failed/, when nothing in it was readable) once
        every message in it is confirmed, that is: committed to the ledger."""
        done = set(message_ids)
        for f, ids in list(self._pending.items()):
            ids -= done
            if not ids and f.exists():
                target = self.inbox / ("failed" if f in self._unusable else "processed")
                target.mkdir(exist_ok=True)
                f.replace(target / f.name)
                del self._pending[f]

    def post_reply(self, reply: Reply) -> None:
        self.post_replies([reply])

    def post_replies(self, replies: Sequence[Reply]) -> None:
        """Answers into the day's files: each file read once, the new rows added (an id
        already there is a resend after a crash, and skipped), written whole and
        atomically once per round, not once per answer; on disk when it returns
        (``connectors.durable``), as the ledger then records the answers as given."""
        folders = Folders()
        folders.make(self.outbox)
        by_file: dict[Path, tuple[tuple[str, ...], list[list[Any]]]] = {}
        for reply in replies:
            path, cols, rows = self._rows(reply)
            by_file.setdefault(path, (cols, []))[1].extend(rows)
        for path, (cols, rows) in by_file.items():
            existing: list[list[str]] = []
            if path.exists():
                with open(path, encoding="utf-8-sig", newline="") as fh:
                    existing = list(csv.reader(fh, delimiter=self.settings.delimiter))[1:]
            have = {r[0] for r in existing if r}
            new = [r for r in rows if r[0] not in have]
            if not new:
                continue
            tmp = path.with_suffix(".csv.tmp")
            with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
                w = csv.writer(fh, delimiter=self.settings.delimiter)
                w.writerow(cols)
                w.writerows(existing)
                w.writerows([[safe_cell(v) for v in r] for r in new])
                fh.flush()
                os.fsync(fh.fileno())
            folders.replace(tmp, path)
            self.written.add(path)
        folders.sync()

    def _rows(self, reply: Reply) -> tuple[Path, tuple[str, ...], list[list[Any]]]:
        day = (reply.created_on or dt.date.today()).strftime("%Y%m%d")
        if reply.type == "saldoverzoek_antwoord":
            rows: list[list[Any]] = [
                [
                    reply.reply_id,
                    reply.in_reply_to,
                    reply.shv_client_number,
                    c.client_number,
                    c.invoice_number,
                    c.shv_invoice_number,
                    c.debt_type,
                    c.arisen_on.isoformat(),
                    _euros(c.original_cents),
                    _euros(c.principal_cents),
                    _euros(c.costs_cents),
                    _euros(c.interest_cents),
                ]
                for c in reply.claims
            ]
            return self.outbox / f"saldoverzoek-antwoord-{day}.csv", SALDO_COLUMNS, rows
        accepted = "" if reply.accepted is None else ("ja" if reply.accepted else "nee")
        row = [
            reply.reply_id,
            OUT_TYPES[reply.type],
            reply.in_reply_to,
            reply.shv_client_number,
            reply.client_number,
            accepted,
            reply.reason,
        ]
        return self.outbox / f"antwoorden-{day}.csv", ANSWER_COLUMNS, [row]


class SftpPortalExchange(PortalExchange):
    """The portal route through an SFTP folder (a creditor's file server or a managed
    transfer service in between): each new download is fetched into ``inbox_dir``
    (atomically) and only then moved to the remote ``processed_dir``; a crash in between
    leaves the local copy, which is read (and deduplicated by message id) next time.
    Answer files are uploaded to ``upload_dir`` after each round, whole (each day's
    file is cumulative, so uploading it again is harmless)."""

    def __init__(
        self, settings: PortalExchangeSettings, base_dir: Path, client: SftpClient
    ) -> None:
        super().__init__(settings, base_dir)
        self.client = client

    def fetch_inbox(self) -> Sequence[InMessage | Unreadable]:
        assert self.settings.sftp is not None
        with self.client:
            for name in self.client.list_new():
                self.client.download(name, self.inbox)
                self.client.move(name, self.settings.sftp.processed_dir)
        return super().fetch_inbox()

    def upload_answers(self) -> int:
        """Upload the answer files written in this round; returns how many."""
        if not self.written:
            return 0
        with self.client:
            for path in sorted(self.written):
                self.client.upload(path, self.settings.upload_dir, replace=True)
        n = len(self.written)
        self.written.clear()
        return n


__all__ = [
    "ANSWER_COLUMNS",
    "SALDO_COLUMNS",
    "PortalExchange",
    "SftpPortalExchange",
    "row_to_message",
]
