"""A realistic Dutch portfolio for the demo creditor and the benchmarks.

Debtors get a persona (on time, forgetful, can't pay, won't pay, protected) that drives
their payment history; names and addresses come from Faker ``nl_NL``; IBANs and 16-digit
betalingskenmerken are valid. A few records are deliberately broken (as real exports
are) so quarantine has something to show. Deterministic for a given seed and date.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from faker import Faker
from lxml import etree
from schwifty import IBAN

from transforms.references import new_betalingskenmerk
from transforms.wik import collection_costs_cents

PERSONAS = ("on_time", "forgetful", "cant_pay", "wont_pay", "protected")
PERSONA_SHARE = (0.50, 0.25, 0.14, 0.08, 0.03)
BANKS = ("INGB", "RABO", "ABNA", "SNSB", "TRIO", "ASNB", "KNAB")
CREDITOR_IBAN = "NL91ABNA0417164300"


@dataclass
class Portfolio:
    debtors: pd.DataFrame  # ERP shape (Dutch column names)
    invoices: pd.DataFrame
    statement: pd.DataFrame  # entries for today's CAMT.053
    notices: pd.DataFrame  # Schuldenknooppunt Kennisgevingen (portal CSV shape)
    personas: pd.Series


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _iban(rng: np.random.Generator) -> str:
    bank = BANKS[int(rng.integers(len(BANKS)))]
    account = f"{int(rng.integers(10**9, 10**10)):010d}"
    return str(IBAN.generate("NL", bank_code=bank, account_code=account))


def generate(
    n_debtors: int,
    today: dt.date,
    seed: int = 7,
    broken_share: float = 0.004,
    months: int = 9,
    statement_lines: int | None = None,
) -> Portfolio:
    """``months`` of rent invoices per debtor (9: about eight months of history);
    ``statement_lines`` pads today's statement to that many lines (a rent day: more
    open items paid by reference, and payers nobody knows)."""
    rng = np.random.default_rng(seed)
    fake = Faker("nl_NL")
    fake.seed_instance(seed)
    persona = rng.choice(PERSONAS, size=n_debtors, p=PERSONA_SHARE)
    ids = [f"R{i:07d}" for i in range(1, n_debtors + 1)]
    stamp = (dt.datetime.combine(today, dt.time(6, 0)) - dt.timedelta(days=1)).isoformat(
        timespec="seconds"
    )
    debtors = []
    for i, did in enumerate(ids):
        name = fake.name()
        has_email = rng.random() < 0.85
        has_phone = rng.random() < 0.75
        local = _ascii(name.lower()).replace(" ", ".").replace("'", "")
        debtors.append(
            {
                "relatienr": did,
                "naam": name,
                "email": f"{local}.{i}@example.nl" if has_email else None,
                "telefoon": f"06{int(rng.integers(10_000_000, 64_999_999))}" if has_phone else None,
                "iban": _iban(rng),
                "straat": fake.street_address(),
                "postcode": fake.postcode(),
                "plaats": fake.city(),
                "taal": "en" if rng.random() < 0.06 else "nl",
                "gewijzigd_op": stamp,
            }
        )
    deb = pd.DataFrame(debtors)

    invoices = []
    seq = 0
    first_month = today.replace(day=1)
    for _ in range(months - 1):
        first_month = (first_month - dt.timedelta(days=1)).replace(day=1)
    for did, p in zip(ids, persona, strict=True):
        rent = int(rng.integers(55_000, 98_000))  # cents
        month = first_month
        while month <= today:
            seq += 1
            inv_date = month
            due = inv_date + dt.timedelta(days=14)
            age = (today - due).days
            paid_date, open_c, reminders = _behaviour(p, rng, due, age, rent, today)
            # after its own 14-day letter the ERP booked the statutory costs (WIK) on top
            costs = collection_costs_cents(rent) if reminders >= 3 and open_c == rent else 0
            open_c += costs
            invoices.append(
                {
                    "factuurnr": f"F{inv_date.year}-{seq:07d}",
                    "relatienr": did,
                    "factuurdatum": inv_date.isoformat(),
                    "vervaldatum": due.isoformat(),
                    "bedrag": f"{Decimal(rent) / 100:.2f}",
                    "openstaand": f"{Decimal(open_c) / 100:.2f}",
                    "kosten": f"{Decimal(costs) / 100:.2f}",
                    "valuta": "EUR",
                    "betalingskenmerk": new_betalingskenmerk(seq),
                    "betaaldatum": paid_date.isoformat() if paid_date else None,
                    "herinneringen": reminders,
                    "gewijzigd_op": stamp,
                }
            )
            month = (month + dt.timedelta(days=32)).replace(day=1)
    inv = pd.DataFrame(invoices)
    _break_some(deb, inv, rng, broken_share)
    statement = _statement(inv, deb, pd.Series(persona, index=ids), rng, today, statement_lines)
    prot = [d for d, p in zip(ids, persona, strict=True) if p == "protected"]
    # Kennisgevingen for the protected, and for a few of them the Saldoverzoek that
    # follows (same CSV shape as the portal's download, see schuldenknooppunt/portal.py)
    asked = prot[:3]
    notices = pd.DataFrame(
        {
            "BerichtId": [f"SKN-{today:%Y%m%d}-{i:05d}" for i in range(1, len(prot) + 1)]
            + [f"SKN-{today:%Y%m%d}-S{i:04d}" for i in range(1, len(asked) + 1)],
            "BerichtType": ["Kennisgeving"] * len(prot) + ["Saldoverzoek"] * len(asked),
            "Datum": today.isoformat(),
            "KlantnummerSE": prot + asked,
            "KlantnummerSHV": [f"SHV-{i:05d}" for i in range(1, len(prot) + 1)]
            + [f"SHV-{i:05d}" for i in range(1, len(asked) + 1)],
            "OrganisatieSHV": "Gemeente Voorbeeld, schuldhulpverlening",
        }
    )
    return Portfolio(deb, inv, statement, notices, pd.Series(persona, index=ids))


def _behaviour(
    p: str, rng: np.random.Generator, due: dt.date, age: int, rent: int, today: dt.date
) -> tuple[dt.date | None, int, int]:
    """(paid date, open cents, reminders sent by the ERP) for one invoice."""
    late = {
        "on_time": (0, 2),
        "forgetful": (4, 14),
        "cant_pay": (10, 35),
        "wont_pay": (30, 65),
        "protected": (15, 40),
    }[p]
    days = int(rng.integers(late[0], late[1] + 1))
    if p in ("cant_pay", "protected") and age > -14 and age < 75:
        # the last months pile up; some are partly paid
        part = int(rng.choice([0, 0, 5_000, 10_000]))
        return None, max(rent - part, 1), int(age > 20)
    if p == "wont_pay" and 0 < age < 90:
        return None, rent, min(age // 20, 3)
    if p == "on_time" and 0 < age <= 6 and rng.random() < 0.25:
        return None, rent, 0  # an accident
    if age >= days and due + dt.timedelta(days=days) < today:
        return due + dt.timedelta(days=days), 0, int(days > 14)
    return None, rent, 0


def _break_some(
    deb: pd.DataFrame, inv: pd.DataFrame, rng: np.random.Generator, share: float
) -> None:
    """Mangle a few records the way real exports break."""
    n = max(1, int(len(inv) * share))
    rows = rng.choice(
        inv.index[inv["betaaldatum"].isna()],
        size=min(n * 4, int((inv["betaaldatum"].isna()).sum())),
        replace=False,
    )
    kinds = ["negative", "bad_date", "unknown_debtor", "bad_reference"]
    for i, idx in enumerate(rows):
        kind = kinds[i % len(kinds)]
        if kind == "negative":
            inv.loc[idx, "bedrag"] = "-" + str(inv.loc[idx, "bedrag"])
        elif kind == "bad_date":
            inv.loc[idx, "vervaldatum"] = "31-13-2026"
        elif kind == "unknown_debtor":
            inv.loc[idx, "relatienr"] = "R9999999"
        else:
            ref = str(inv.loc[idx, "betalingskenmerk"])
            inv.loc[idx, "betalingskenmerk"] = str((int(ref[0]) + 1) % 10) + ref[1:]
    m = max(1, int(len(deb) * share))
    for j, idx in enumerate(rng.choice(deb.index, size=min(m * 2, len(deb)), replace=False)):
        if j % 2 == 0:
            deb.loc[idx, "iban"] = "NL00INGB0001234567"
        else:
            deb.loc[idx, ["email", "telefoon", "straat", "postcode"]] = None


def _statement(
    inv: pd.DataFrame,
    deb: pd.DataFrame,
    persona: pd.Series,
    rng: np.random.Generator,
    today: dt.date,
    pad_to: int | None = None,
) -> pd.DataFrame:
    """Today's credit entries: some overdue items paid, some partly, a few unmatched."""
    open_ = inv[
        inv["betaaldatum"].isna()
        & (pd.to_datetime(inv["vervaldatum"], errors="coerce") < pd.Timestamp(today))
    ]
    open_ = open_[~open_["bedrag"].astype(str).str.startswith("-")]
    names = deb.set_index("relatienr")["naam"]
    ibans = deb.set_index("relatienr")["iban"]
    rows: list[dict[str, object]] = []
    for r in open_.itertuples(index=False):
        p = persona.get(r.relatienr, "on_time")
        roll = rng.random()
        amount = r.openstaand
        if p in ("on_time", "forgetful") and roll < 0.35:
            mode = "structured" if rng.random() < 0.7 else "text_reference"
        elif p == "cant_pay" and roll < 0.2:
            mode, amount = "invoice_in_text", "50.00"
        else:
            continue
        ref = r.betalingskenmerk
        rows.append(
            {
                "amount": amount,
                "name": names.get(r.relatienr),
                "iban": ibans.get(r.relatienr),
                "structured": ref if mode == "structured" else None,
                "text": {
                    "structured": None,
                    "text_reference": f"betaling huur kenmerk {ref[:4]} {ref[4:8]} {ref[8:12]} {ref[12:]}",
                    "invoice_in_text": f"deel van factuur {r.factuurnr}, rest volgt",
                }[mode],
                "e2e": f"E2E{len(rows):08d}",
            }
        )
    for k in range(max(2, len(rows) // 20)):
        rows.append(
            {
                "amount": f"{rng.integers(1000, 90000) / 100:.2f}",
                "name": "Onbekende betaler",
                "iban": _iban(rng),
                "structured": None,
                "text": f"gift {k}",
                "e2e": f"E2EX{k:07d}",
            }
        )
    out = pd.DataFrame(rows)
    if pad_to and pad_to > len(out):
        out = pd.concat([out, _padding(open_, names, ibans, rng, pad_to - len(out), out)])
    return out.reset_index(drop=True)


def _padding(
    open_: pd.DataFrame,
    names: pd.Series,
    ibans: pd.Series,
    rng: np.random.Generator,
    n: int,
    taken: pd.DataFrame,
) -> pd.DataFrame:
    """More of a rent day, built in bulk: open items not yet paid today, paid in full by
    structured reference (three in four of the extra lines, as far as they go), the rest
    from payers the creditor does not know."""
    paid_today = set(taken["structured"].dropna())
    left = open_[~open_["betalingskenmerk"].isin(paid_today)]
    k = min(len(left), (n * 3) // 4)
    pick = left.iloc[rng.permutation(len(left))[:k]]
    known = pd.DataFrame(
        {
            "amount": pick["openstaand"].to_numpy(),
            "name": names.reindex(pick["relatienr"]).to_numpy(),
            "iban": ibans.reindex(pick["relatienr"]).to_numpy(),
            "structured": pick["betalingskenmerk"].to_numpy(),
            "text": None,
            "e2e": [f"E2EP{i:08d}" for i in range(k)],
        }
    )
    m = n - k
    unknown = pd.DataFrame(
        {
            "amount": [f"{c / 100:.2f}" for c in rng.integers(500, 150_000, size=m)],
            "name": "Onbekende betaler",
            "iban": [_iban(rng) for _ in range(m)],
            "structured": None,
            "text": [f"overboeking {i}" for i in range(m)],
            "e2e": [f"E2EU{i:08d}" for i in range(m)],
        }
    )
    return pd.concat([known, unknown])


def write_erp(path: Path, p: Portfolio) -> None:
    """The demo ERP: a SQLite database with Dutch table and column names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            DROP TABLE IF EXISTS relaties; DROP TABLE IF EXISTS facturen;
            CREATE TABLE relaties (relatienr TEXT PRIMARY KEY, naam TEXT, email TEXT, telefoon TEXT,
              iban TEXT, straat TEXT, postcode TEXT, plaats TEXT, taal TEXT, gewijzigd_op TEXT NOT NULL,
              schuldhulp TEXT, schuldhulp_sinds TEXT, voorkeursdag INTEGER, kanaal TEXT);
            CREATE TABLE facturen (factuurnr TEXT PRIMARY KEY, relatienr TEXT, factuurdatum TEXT,
              vervaldatum TEXT, bedrag TEXT, openstaand TEXT, kosten TEXT, valuta TEXT,
              betalingskenmerk TEXT,
              betaaldatum TEXT, herinneringen INTEGER DEFAULT 0, gewijzigd_op TEXT NOT NULL,
              incassostatus TEXT, vangnet_openstaand TEXT, vangnet_bijgewerkt TEXT);
            CREATE INDEX facturen_gewijzigd ON facturen (gewijzigd_op, factuurnr);
            CREATE INDEX relaties_gewijzigd ON relaties (gewijzigd_op, relatienr);
            """
        )
        p.debtors.to_sql("relaties", db, if_exists="append", index=False)
        p.invoices.to_sql("facturen", db, if_exists="append", index=False)


def camt053(entries: pd.DataFrame, today: dt.date, account_iban: str = CREDITOR_IBAN) -> bytes:
    """A CAMT.053.001.02 statement with one booked credit entry per row."""
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
    E = lambda tag, *children, **attrs: _el(ns, tag, children, attrs)  # noqa: E731
    total = sum(Decimal(a) for a in entries["amount"]) if len(entries) else Decimal(0)
    ntries = []
    for i, r in enumerate(entries.itertuples(index=False)):
        rmt = []
        if isinstance(r.structured, str):
            rmt.append(
                E(
                    "Strd",
                    E(
                        "CdtrRefInf",
                        E("Tp", E("CdOrPrtry", E("Cd", "SCOR")), E("Issr", "CUR")),
                        E("Ref", r.structured),
                    ),
                )
            )
        if isinstance(r.text, str):
            rmt.insert(0, E("Ustrd", r.text))
        tx = E(
            "TxDtls",
            E("Refs", E("AcctSvcrRef", f"{today:%Y%m%d}{i:06d}"), E("EndToEndId", r.e2e)),
            E("AmtDtls", E("TxAmt", E("Amt", str(r.amount), Ccy="EUR"))),
            E("RltdPties", E("Dbtr", E("Nm", r.name)), E("DbtrAcct", E("Id", E("IBAN", r.iban)))),
            *([E("RmtInf", *rmt)] if rmt else []),
        )
        ntries.append(
            E(
                "Ntry",
                E("Amt", str(r.amount), Ccy="EUR"),
                E("CdtDbtInd", "CRDT"),
                E("Sts", "BOOK"),
                E("BookgDt", E("Dt", today.isoformat())),
                E("ValDt", E("Dt", today.isoformat())),
                E("AcctSvcrRef", f"{today:%Y%m%d}{i:06d}"),
                E(
                    "BkTxCd",
                    E("Domn", E("Cd", "PMNT"), E("Fmly", E("Cd", "RCDT"), E("SubFmlyCd", "ESCT"))),
                ),
                E("NtryDtls", tx),
            )
        )
    doc = E(
        "Document",
        E(
            "BkToCstmrStmt",
            E(
                "GrpHdr",
                E("MsgId", f"DEMO/{today:%Y%m%d}"),
                E("CreDtTm", f"{today.isoformat()}T06:00:00"),
            ),
            E(
                "Stmt",
                E("Id", f"DEMO/{today:%Y%m%d}/1"),
                E("CreDtTm", f"{today.isoformat()}T06:00:00"),
                E("Acct", E("Id", E("IBAN", account_iban)), E("Ccy", "EUR")),
                E(
                    "Bal",
                    E("Tp", E("CdOrPrtry", E("Cd", "OPBD"))),
                    E("Amt", "0.00", Ccy="EUR"),
                    E("CdtDbtInd", "CRDT"),
                    E("Dt", E("Dt", today.isoformat())),
                ),
                E(
                    "Bal",
                    E("Tp", E("CdOrPrtry", E("Cd", "CLBD"))),
                    E("Amt", f"{total:.2f}", Ccy="EUR"),
                    E("CdtDbtInd", "CRDT"),
                    E("Dt", E("Dt", today.isoformat())),
                ),
                *ntries,
            ),
        ),
    )
    return bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _el(ns: str, tag: str, children: tuple, attrs: dict) -> etree._Element:
    el = etree.Element(f"{{{ns}}}{tag}", nsmap={None: ns}, **attrs)
    for c in children:
        if isinstance(c, etree._Element):
            el.append(c)
        elif c is not None and c == c:  # skip None and NaN
            el.text = str(c)
    return el


def write_notices(path: Path, notices: pd.DataFrame) -> None:
    """Kennisgevingen as the Schuldenknooppunt web portal's CSV download (';', UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    notices.to_csv(path, sep=";", index=False, encoding="utf-8")


__all__ = ["PERSONAS", "Portfolio", "camt053", "generate", "write_erp", "write_notices"]
