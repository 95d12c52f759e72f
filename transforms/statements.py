"""Bank statement parsing: CAMT.053 (ISO 20022, .001.02 .. .001.08); MT940 in ``mt940.py``.

Output is a DataFrame of booked entries with the canonical ``PAYMENT_COLUMNS``; a batch
entry with several ``TxDtls`` is split into its transactions. Reversals (``RvslInd``)
flip the sign of the entry and carry the return reason (``RtrInf/Rsn/Cd``).

Safety: no DTDs, no entities, no network, a size limit; a file that breaks a rule raises
``StatementError`` naming the element. MT940 and CSV exports arrive in the payments issue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mmap
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
from lxml import etree

from ledger.records import PAYMENT_COLUMNS, tuples

MAX_BYTES = 50 * 1024 * 1024


class StatementError(ValueError):
    """A statement file we cannot read; the message names the element or line."""


#: a DOCTYPE or ENTITY declaration anywhere, in any case (searched in place: upper-casing
#: a day's 400 MB file to look for one copied it)
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
#: XML (CAMT) rather than MT940, by its first character past any whitespace
_XML_START = re.compile(rb"\s*<")


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(el: Any, *path: str) -> Any:
    """Follow local names below ``el`` (namespace-agnostic: lxml's ``{*}`` matches any
    namespace; ``iterchildren`` matches in C, twice as fast as ``find``); None when
    absent."""
    cur = el
    for name in path:
        if cur is None:
            return None
        cur = next(cur.iterchildren("{*}" + name), None)
    return cur


def _text(el: Any, *path: str) -> str | None:
    node = _child(el, *path)
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def _cents(el: Any, where: str) -> tuple[int, str]:
    if el is None or el.text is None:
        raise StatementError(f"{where}: missing Amt")
    try:
        value = Decimal(el.text.strip())
    except InvalidOperation as exc:
        raise StatementError(f"{where}: Amt {el.text.strip()!r} is not a decimal") from exc
    if value != value.quantize(Decimal("0.01")):
        raise StatementError(f"{where}: Amt {value} has more than two decimals")
    return int(value * 100), el.get("Ccy") or ""


def _date(el: Any, where: str) -> dt.date | None:
    if el is None:
        return None
    raw = _text(el, "Dt") or _text(el, "DtTm")
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise StatementError(f"{where}: date {raw!r} is not ISO 8601") from exc


def too_big(data: bytes | mmap.mmap, source_name: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise StatementError(
            f"{source_name}: {len(data)} bytes exceeds the {max_bytes} limit (max_file_bytes)"
        )


def parse_camt053(
    data: bytes | mmap.mmap, source_name: str = "statement", max_bytes: int = MAX_BYTES
) -> pd.DataFrame:
    """Parse a CAMT.053 document into booked entries (batch entries split).

    Read as a stream: each ``Ntry`` is read when its end tag is parsed and then let go,
    so a day's file of 300,000 lines never stands in memory as one tree (it took 5 GB).
    ``data`` may be the file mapped (``mmap``): lxml then reads it a block at a time, and
    the file's 400 MB on a rent day stay in the page cache instead of the heap."""
    too_big(data, source_name, max_bytes)
    if _DECLARATION.search(data):
        raise StatementError(f"{source_name}: DOCTYPE/ENTITY declarations are refused")
    file_hash = hashlib.sha256(data).hexdigest()[:16]
    rows: list[dict[str, Any]] = []
    if isinstance(data, mmap.mmap):
        data.seek(0)  # a mapped file is read from its start, as a file
    events = etree.iterparse(
        data if isinstance(data, mmap.mmap) else io.BytesIO(data),
        events=("start", "end"),
        tag=("{*}Document", "{*}BkToCstmrStmt", "{*}Stmt", "{*}Ntry"),
        remove_blank_text=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    root = container = stmt = None
    camt = False  # the root is a camt.053 Document; said only once the whole file parsed,
    s_idx = e_idx = -1  # so a broken file is named by its line, as a tree parse names it

    def is_camt(el: Any) -> bool:
        return el is not None and _local(el.tag) == "Document" and "camt.053" in (el.tag or "")

    try:
        for event, el in events:
            if root is None:
                root = el.getroottree().getroot()
                camt = is_camt(root)
            if el is root or not camt:
                continue
            parent = el.getparent()
            local = _local(el.tag)
            if event == "start":
                if local == "BkToCstmrStmt" and container is None and parent is root:
                    container = el
                elif local == "Stmt" and container is not None and parent is container:
                    stmt, s_idx, e_idx = el, s_idx + 1, -1
                continue
            if local == "Ntry" and stmt is not None and parent is stmt:
                e_idx += 1
                where = f"{source_name}: Stmt[{s_idx + 1}]/Ntry[{e_idx + 1}]"
                rows.extend(_entry_rows(el, where, f"{file_hash}-{s_idx}-{e_idx}"))
                el.clear()  # read: let it and the entries before it go
                while el.getprevious() is not None:
                    del parent[0]
            elif local == "Stmt" and el is stmt:
                stmt = None
    except etree.XMLSyntaxError as exc:
        raise StatementError(f"{source_name}: line {exc.lineno}: {exc.msg}") from exc
    if not camt:  # also when no element of the file is one CAMT names
        raise StatementError(f"{source_name}: root element is not a camt.053 Document")
    if s_idx < 0:
        raise StatementError(f"{source_name}: no BkToCstmrStmt/Stmt element")
    return pd.DataFrame(rows, columns=list(PAYMENT_COLUMNS))


def _kids(el: Any) -> dict[str, Any]:
    """Local name -> the first child of that name (namespace-agnostic, like ``_child``).
    An entry or a transaction is asked for most of its children: one pass over them
    costs less than a search for each (a third of a day's parse went to those)."""
    out: dict[str, Any] = {}
    if el is not None:
        for c in el:
            tag = c.tag
            if isinstance(tag, str):  # not a comment or processing instruction
                out.setdefault(tag[tag.rfind("}") + 1 :], c)
    return out


def _entry_rows(entry: Any, where: str, id_prefix: str) -> list[dict[str, Any]]:
    """One ``Ntry``'s payments: one per transaction of a batch entry; none when it is
    not booked (pending and information entries are not payments)."""
    e = _kids(entry)
    sts = e.get("Sts")
    status = _text(sts) or _text(sts, "Cd")
    if status and status not in ("BOOK",):
        return []
    entry_cents, ccy = _cents(e.get("Amt"), where)
    cdi = _text(e.get("CdtDbtInd"))
    if cdi not in ("CRDT", "DBIT"):
        raise StatementError(f"{where}: CdtDbtInd {cdi!r} is not CRDT or DBIT")
    reversal = (_text(e.get("RvslInd")) or "false").lower() == "true"
    booking = _date(e.get("BookgDt"), where)
    if booking is None:
        raise StatementError(f"{where}: missing BookgDt")
    value_date = _date(e.get("ValDt"), where)
    sign = 1 if cdi == "CRDT" else -1
    bank_ref = _text(e.get("AcctSvcrRef"))
    txs = [t for d in entry.iterchildren("{*}NtryDtls") for t in d.iterchildren("{*}TxDtls")]
    if not txs:
        txs = [None]
    counter_role = "Dbtr" if cdi == "CRDT" else "Cdtr"
    rows = []
    for t_idx, tx in enumerate(txs):
        t = _kids(tx)
        if tx is not None and len(txs) > 1:
            amt_el = _child(t.get("AmtDtls"), "TxAmt", "Amt")
            if amt_el is None:
                amt_el = t.get("Amt")
            cents, tx_ccy = _cents(amt_el, f"{where}/TxDtls[{t_idx + 1}]")
            ccy = tx_ccy or ccy
        else:
            cents = entry_cents
        iban = name = ustrd = strd = None
        parties = t.get("RltdPties")
        if parties is not None:
            pk = _kids(parties)
            party = pk.get(counter_role)
            if party is not None:
                name = _text(party, "Nm") or _text(party, "Pty", "Nm")
            iban = _text(pk.get(f"{counter_role}Acct"), "Id", "IBAN")
        rmt = t.get("RmtInf")
        if rmt is not None:
            parts = [x for c in rmt.iterchildren("{*}Ustrd") if c.text and (x := c.text.strip())]
            ustrd = " ".join(parts) or None
            strd = _text(rmt, "Strd", "CdtrRefInf", "Ref")
        refs = _kids(t.get("Refs"))
        rows.append(
            {
                "payment_id": f"{id_prefix}-{t_idx}",
                "booking_date": booking,
                "value_date": value_date,
                "amount_cents": sign * cents,
                "currency": ccy or "EUR",
                "counterparty_iban": iban,
                "counterparty_name": name,
                "remittance": ustrd,
                "structured_reference": strd,
                "end_to_end_id": _text(refs.get("EndToEndId")),
                "bank_reference": _text(refs.get("AcctSvcrRef")) or bank_ref,
                "reversal": reversal,
                "return_reason": _text(t.get("RtrInf"), "Rsn", "Cd"),
            }
        )
    return rows


def parse_statement(
    data: bytes | mmap.mmap,
    source_name: str = "statement",
    fmt: str = "auto",
    csv_mapping: Any = None,
    max_bytes: int = MAX_BYTES,
) -> pd.DataFrame:
    """CAMT.053, MT940 or a mapped CSV export (``fmt`` ``camt053`` | ``mt940`` | ``csv`` |
    ``auto``: XML means CAMT, otherwise MT940); ``max_bytes``: the source's limit.
    ``data``: the file's bytes, or the file mapped (CAMT.053 streams from the mapping;
    MT940 and CSV are decoded whole, so they get its bytes)."""
    if fmt == "auto":
        fmt = "camt053" if _XML_START.match(data) else "mt940"
    if fmt != "camt053" and isinstance(data, mmap.mmap):
        too_big(data, source_name, max_bytes)  # before it is copied out
        data = data[:]
    if fmt == "csv":
        from transforms.csv_payments import parse_csv_payments

        if csv_mapping is None:
            raise StatementError(
                f"{source_name}: a CSV export needs a column mapping (csv: in the source)"
            )
        return parse_csv_payments(bytes(data), csv_mapping, source_name, max_bytes)
    if fmt == "camt053":
        return parse_camt053(data, source_name, max_bytes)
    if fmt == "mt940":
        from transforms.mt940 import parse_mt940

        return parse_mt940(bytes(data), source_name, max_bytes)
    raise StatementError(f"{source_name}: unknown statement format {fmt!r}")


def _text_or_none(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def entries_as_json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The operator-facing JSON shape: signed decimal strings, ISO dates; a missing value
    is null (never NaN, which is not JSON)."""
    out = []
    t = _text_or_none
    for r in tuples(df):
        out.append(
            {
                "booking_date": r.booking_date.isoformat(),
                "value_date": r.value_date.isoformat()
                if isinstance(r.value_date, dt.date)
                else None,
                "amount": f"{Decimal(int(r.amount_cents)) / 100:.2f}",
                "currency": r.currency,
                "counterparty_iban": t(r.counterparty_iban),
                "counterparty_name": t(r.counterparty_name),
                "remittance": t(r.remittance),
                "structured_reference": t(r.structured_reference),
                "end_to_end_id": t(r.end_to_end_id),
                "bank_reference": t(r.bank_reference),
                "reversal": bool(r.reversal),
                "return_reason": t(r.return_reason),
            }
        )
    return out


__all__ = ["StatementError", "entries_as_json_rows", "parse_camt053", "parse_statement"]
