"""The ledger's tables (SQLAlchemy 2 Core).

Every table carries ``creditor_id``: the hub serves many creditors from one store and a
row never exists without its owner. Money is integer cents with an explicit currency;
dates are ``Date``; timestamps are timezone-aware UTC.

The Alembic migrations in ``ledger/migrations`` create exactly these tables; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and read back timezone-aware, on every dialect.

    SQLite keeps no offset: without this, 09:30+01:00 and 08:30+00:00 would be stored as
    different strings and compared wrongly. Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores timezone-aware timestamps only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


TS = UTCDateTime()

creditors = Table(
    "creditors",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("sector", String(32), nullable=False),
    Column("config_sha256", String(64), nullable=False),
    Column("stopped_reason", Text),  # set when a batch-level failure stops contact
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

source_cursors = Table(
    "source_cursors",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("source", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("cursor", JSON, nullable=False),  # e.g. {"watermark": "...", "key": "..."}
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

debtors = Table(
    "debtors",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("debtor_id", String(64), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
    Column("phone", String(32)),  # E.164
    Column("iban", String(34)),
    Column("street", String(200)),
    Column("postcode", String(7)),
    Column("city", String(100)),
    Column("language", String(5), nullable=False, server_default="nl"),
    Column("bucket", Integer, nullable=False),  # hash(debtor_id) % 1024, for partitions
    Column("source_version", String(64)),  # the source's modified marker when read
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_debtors_bucket", "creditor_id", "bucket"),  # a partition's rows
)

invoices = Table(
    "invoices",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("invoice_id", String(64), primary_key=True),
    Column("debtor_id", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("open_cents", BigInteger, nullable=False),  # still owed, costs and interest included
    Column("costs_cents", BigInteger, nullable=False, server_default="0"),  # part of open
    Column("interest_cents", BigInteger, nullable=False, server_default="0"),  # part of open
    Column("currency", String(3), nullable=False),
    Column("payment_reference", String(35)),
    Column("paid_date", Date),
    Column("prior_reminders", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # open | partial | paid
    Column("bucket", Integer, nullable=False),  # of its debtor
    Column("source_version", String(64)),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_invoices_debtor", "creditor_id", "debtor_id"),
    Index("ix_invoices_bucket", "creditor_id", "bucket"),
    # room on each page for a row's next version, so the daily update of open amounts
    # and statuses (no indexed column) stays on its page (migration 0014)
    postgresql_with={"fillfactor": 85},
)

erp_payments = Table(
    "erp_payments",
    metadata,
    # payments as the creditor's own system booked them (payment history for signals);
    # bank statement lines are `payments`
    Column("creditor_id", String(64), primary_key=True),
    Column("payment_id", String(64), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("debtor_id", String(64), nullable=False),
    Column("invoice_id", String(64)),
    Column("paid_on", Date, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("method", String(32)),
    Column("bucket", Integer, nullable=False),
    Column("source_version", String(64)),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_erp_payments_debtor", "creditor_id", "debtor_id"),
)

statement_files = Table(
    "statement_files",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("content_sha256", String(64), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("format", String(16), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("received_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

payments = Table(
    "payments",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("payment_id", String(96), primary_key=True),  # file hash + entry index
    Column("source", String(64), nullable=False),
    Column("booking_date", Date, nullable=False),
    Column("value_date", Date),
    Column("amount_cents", BigInteger, nullable=False),  # signed, credit positive
    Column("currency", String(3), nullable=False),
    Column("counterparty_iban", String(34)),
    Column("counterparty_name", String(140)),
    Column("remittance", Text),
    Column("structured_reference", String(35)),
    Column("end_to_end_id", String(64)),
    Column("bank_reference", String(64)),
    Column("reversal", Boolean, nullable=False, server_default="0"),
    Column("return_reason", String(8)),
    Column("status", String(16), nullable=False),  # new | matched | partial | unmatched
    Column("unmatched_reason", Text),
    Column("suggestions", JSON),  # for review: candidate debtors/items with their evidence
    Column("allocated_cents", BigInteger, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_payments_status", "creditor_id", "status"),
)

allocations = Table(
    "allocations",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("payment_id", String(96), primary_key=True),
    Column("invoice_id", String(64), primary_key=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("rule", String(32), nullable=False),  # which evidence matched
    # amount_cents split over the components, in the creditor's allocation order
    Column("costs_cents", BigInteger, nullable=False, server_default="0"),
    Column("interest_cents", BigInteger, nullable=False, server_default="0"),
    Column("principal_cents", BigInteger, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 of the raw record
    Column("failures", JSON, nullable=False),  # [{"rule":..., "column":..., "value": masked}]
    Column("payload", JSON, nullable=False),  # the record as read (kept, never logged)
    Column("status", String(16), nullable=False),  # open | released | discarded
    Column("cycle_date", Date, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    UniqueConstraint("creditor_id", "source", "entity", "record_id", "fingerprint"),
)

signals = Table(
    "signals",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("debtor_id", String(64), primary_key=True),
    Column("signal", String(48), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("first_fired", Date, nullable=False),
    Column("last_seen", Date, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

segments = Table(
    "segments",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("debtor_id", String(64), primary_key=True),
    Column("as_of", Date, primary_key=True),  # history: one row per assessment day
    Column("segment", String(24), nullable=False),
    Column("score", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("debtor_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # debt_assistance | administration | wsnp | ...
    Column("reason", Text, nullable=False),
    Column("source_message_id", String(128)),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date),
    Column("lifted_at", TS),
    Column("lifted_by", String(64)),
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    UniqueConstraint("creditor_id", "source_message_id"),
    Index("ix_holds_debtor", "creditor_id", "debtor_id"),
)

preferences = Table(
    "preferences",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("debtor_id", String(64), primary_key=True),
    Column("channel", String(16)),
    Column("preferred_day", Integer),  # day of month 1..28
    Column("language", String(5)),
    # the debtor refused to have their details shared with the municipality (Wgs)
    Column("wgs_refused", Boolean, nullable=False, server_default="0"),
    Column("promise_until", Date),  # a promise to pay by this date: no reminder before
    Column("source", String(32), nullable=False),  # portal | erp | operator
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("debtor_id", String(64), nullable=False),
    Column("dossier", String(64), nullable=False),
    Column("step", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("message_id", String(64), nullable=False, unique=True),  # ours, sent to providers
    # planned | sending | sent | failed | ambiguous | cancelled
    Column("status", String(16), nullable=False),
    Column("segment", String(24), nullable=False),
    Column("send_after", TS, nullable=False),
    Column("cycle_date", Date, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("costs_cents", BigInteger, nullable=False, server_default="0"),
    Column("invoice_ids", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("variant", String(64)),  # "experiment:arm" when the step is in an A/B test
    Column("provider_id", String(128)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("sent_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    # exactly-once: one message per (creditor, debtor, dossier, step, channel)
    UniqueConstraint("creditor_id", "debtor_id", "dossier", "step", "channel"),
    Index("ix_contacts_status", "creditor_id", "status"),
)

contact_events = Table(
    "contact_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),  # sent | delivered | opened | bounced | ...
    Column("provider_event_id", String(128), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("detail", JSON, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    UniqueConstraint("creditor_id", "provider_event_id"),
)

write_backs = Table(
    "write_backs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("change_id", String(64), nullable=False, unique=True),  # hash of target+record+values
    Column("values", JSON, nullable=False),
    Column("expected_version", String(64)),  # for the conflict check
    # planned | sending | applied | conflict | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("applied_at", TS),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_write_backs_status", "creditor_id", "status", "id"),  # the next batch, in order
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),  # flow name, operator id, portal
    Column("action", String(64), nullable=False),
    Column("subject", String(128), nullable=False),  # ids only, never personal data
    Column("detail", JSON, nullable=False),
    Index("ix_audit_subject", "creditor_id", "subject"),
)

staging = Table(
    "staging",
    metadata,
    # pages read from a source, committed before the source cursor moves; the validate
    # stage promotes them to the canonical tables or to quarantine, then deletes them
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("staged_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_staging_entity", "creditor_id", "entity"),
)

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    # rotating OAuth tokens of API sources (Exact Online), shared by workers under a row
    # lock (ledger/tokens.py); never logged
    Column("creditor_id", String(64), primary_key=True),
    Column("source", String(64), primary_key=True),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text, nullable=False),
    Column("access_expiry", BigInteger, nullable=False),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

cycle_runs = Table(
    "cycle_runs",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("cycle_date", Date, primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("run_count", Integer, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

#: the tables whose every write marks a debtor dirty (the triggers of migrations 0009, 0011)
DIRTY_WATCHED = (
    "debtors",
    "invoices",
    "holds",
    "contacts",
    "arrangements",
    "preferences",
    "contact_events",
    "allocations",
)
#: debtors whose assessment inputs changed since they were last assessed: written by the
#: ledger's own triggers (migrations 0009, 0011) on every write to what assess reads, whichever
#: code path writes it; claimed and cleared by assess, which then re-assesses only them
#: the same day (``flows.stages.assess_partition``)
dirty_debtors = Table(
    "dirty_debtors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("debtor_id", String(64), nullable=False),
    Column("claimed", Boolean, nullable=False, server_default="0"),
    Index("ix_dirty_debtors", "creditor_id", "debtor_id", "claimed"),
)

# ------------------------------------------------------------------ debt help (SKN)
#: every message from the Schuldenknooppunt, committed before it is confirmed to the hub
skp_messages = Table(
    "skp_messages",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("message_id", String(128), primary_key=True),
    Column("type", String(32)),  # canonical (messages.IN_TYPES); null when unreadable
    Column("sent_on", Date),
    Column("received_at", TS, nullable=False),
    Column("debtor_id", String(64)),  # resolved from KlantnummerSE (or review)
    # new | done | review | answered | unreadable | refused
    Column("status", String(16), nullable=False),
    Column("answer_due", Date),  # 10 working days after receipt, when an answer is owed
    Column("payload", JSON, nullable=False),  # the message (a BSN only where allowed)
    Column("note", Text),  # why it waits for review, or why it could not be used
    Column("handled_at", TS),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_skp_messages_status", "creditor_id", "status"),
    Index("ix_skp_messages_debtor", "creditor_id", "debtor_id"),
)
#: answers to the hub: planned -> sending -> sent (same reply_id on a resend)
skp_replies = Table(
    "skp_replies",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("reply_id", String(64), primary_key=True),
    Column("in_reply_to", String(128)),
    Column("type", String(32), nullable=False),
    Column("debtor_id", String(64)),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # planned | sending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_skp_replies_debtor", "creditor_id", "debtor_id"),
)
#: payment arrangements (a Schuldregeling akkoord, later the self-service page)
arrangements = Table(
    "arrangements",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("arrangement_id", String(64), primary_key=True),
    Column("debtor_id", String(64), nullable=False),
    Column("origin", String(32), nullable=False),  # schuldenknooppunt | portal | operator
    Column("source_message_id", String(128)),
    Column("total_cents", BigInteger, nullable=False),
    Column("instalments", JSON, nullable=False),  # [{"due_on": iso, "amount_cents": n}]
    Column("paid_cents", BigInteger, nullable=False, server_default="0"),  # from reconcile
    Column("status", String(16), nullable=False),  # active | completed | broken | ended
    Column("starts_on", Date, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_arrangements_debtor", "creditor_id", "debtor_id"),
)
#: statutory early signals (Wgs) passed to the municipality, and what came back
wgs_signals = Table(
    "wgs_signals",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("signal_id", String(64), primary_key=True),
    Column("debtor_id", String(64), nullable=False),
    Column("signal_date", Date, nullable=False),
    Column("arrears_cents", BigInteger, nullable=False),
    Column("arisen_on", Date, nullable=False),  # oldest unpaid due date
    Column("days_late", Integer, nullable=False),
    Column("crisis", Boolean, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # exported | outcome
    Column("export_file", String(255)),
    Column("outcome", String(64)),
    Column("outcome_on", Date),
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    UniqueConstraint("creditor_id", "debtor_id", "signal_date"),
)


#: statutory collection costs booked after an unanswered 14-day letter (once per letter)
cost_bookings = Table(
    "cost_bookings",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("message_id", String(64), primary_key=True),  # the 14-day letter's contact
    Column("debtor_id", String(64), nullable=False),
    Column("invoice_id", String(64), nullable=False),  # the dossier item carrying them
    Column("amount_cents", BigInteger, nullable=False),
    Column("deadline", Date, nullable=False),  # the letter's 14 days ended on this day
    Column("booked_on", Date, nullable=False),
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

#: experiment variants stopped by a guardrail (or an operator); their debtors get control
experiment_stops = Table(
    "experiment_stops",
    metadata,
    Column("creditor_id", String(64), primary_key=True),
    Column("experiment", String(64), primary_key=True),
    Column("variant", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("stopped_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
)

#: self-service links withdrawn before their expiry (one message's link, or all of a debtor's)
token_revocations = Table(
    "token_revocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_id", String(64), nullable=False),
    Column("debtor_id", String(64), nullable=False),
    Column("nonce", String(32)),  # null: every link of this debtor
    Column("reason", Text, nullable=False),
    Column("revoked_at", TS, nullable=False),
    ForeignKeyConstraint(["creditor_id"], ["creditors.creditor_id"]),
    Index("ix_token_revocations", "creditor_id", "debtor_id"),
)

ALL_TABLES = tuple(metadata.sorted_tables)
