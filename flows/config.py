"""Per-creditor configuration: one YAML file, validated by pydantic.

Secrets are never in the file: they are named (Prefect Secret block, environment
variable or a key file outside the repo) and resolved here, at the composition root.
Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.exact_online.settings import ExactOnlineSettings
from connectors.letters.channel import LetterSettings
from connectors.messagebird.channel import MessageBirdSettings
from connectors.odbc.settings import OdbcSettings
from connectors.outbox.channel import OutboxSettings
from connectors.salesforce.settings import SalesforceSettings
from connectors.schuldenknooppunt.settings import PortalExchangeSettings, SoapExchangeSettings
from connectors.secrets import SecretRef
from connectors.sendgrid.channel import SendGridSettings
from connectors.sftp.settings import SftpSettings
from transforms.csv_payments import CsvMapping
from transforms.matching import STATUTORY_ORDER, Component, MatchPolicy

Source = Annotated[
    OdbcSettings | SalesforceSettings | ExactOnlineSettings | SftpSettings,
    Field(discriminator="kind"),
]
ReaderSettings = OdbcSettings | SalesforceSettings | ExactOnlineSettings
READER_KINDS = (OdbcSettings, SalesforceSettings, ExactOnlineSettings)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreditorInfo(Strict):
    id: str = Field(description="lowercase letters, digits and dashes, e.g. woonstichting-noord")
    name: str
    sector: Literal[
        "housing",
        "energy",
        "water",
        "health_insurance",
        "municipality",
        "collection_agency",
        "other",
    ]
    language: Literal["nl", "en"] = "nl"

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", v):
            raise ValueError(
                "use 2-63 lowercase letters, digits and dashes, e.g. woonstichting-noord"
            )
        return v


class Branding(Strict):
    display_name: str
    phone: str = Field(description="how a debtor reaches a person")
    email: str
    website: str
    payment_link: str = Field(
        description="pattern with {reference} and {amount}, e.g. https://betaal.example.nl/?ref={reference}"
    )
    debt_help: str = Field(
        "Geldfit helpt gratis en anoniem: www.geldfit.nl of bel 0800-8115.",
        description="where to find debt help, in one sentence",
    )


class SelfServiceSettings(Strict):
    base_url: str = Field(description="the self-service page, e.g. https://mijn.wooncorp.nl/r/")
    secret: SecretRef = Field(description="the HMAC signing secret (at least 32 bytes)")
    valid_days: int = Field(45, ge=1, le=365)
    pause_days: int = Field(30, ge=1, le=90, description="how long 'I can't pay now' pauses")
    max_instalments: int = Field(12, ge=2, le=60, description="the longest arrangement asked")


class WebhookSettings(Strict):
    sendgrid_public_key: SecretRef | None = Field(
        None, description="SendGrid's event webhook verification key (base64 DER)"
    )
    messagebird_signing_key: SecretRef | None = None
    public_url: str | None = Field(
        None, description="the URL providers call (MessageBird signs it), e.g. https://hooks.x.nl"
    )


class LedgerSettings(Strict):
    url: str | None = Field(
        None, description="SQLAlchemy URL; default a SQLite file beside this config"
    )
    url_env: str | None = Field(
        None, description="environment variable holding the URL (production)"
    )
    url_secret: SecretRef | None = Field(
        None, description="a secret holding the URL, e.g. {block: woonstichting-noord-ledger-url}"
    )

    @model_validator(mode="after")
    def _one_way(self) -> LedgerSettings:
        if sum(x is not None for x in (self.url, self.url_env, self.url_secret)) > 1:
            raise ValueError("name the ledger once: url, url_env or url_secret")
        return self


class WriteBackSettings(Strict):
    target: str = Field(
        description="name of an odbc, salesforce or exact_online source to write into"
    )


class ValidationSettings(Strict):
    data_docs_dir: str | None = Field(
        None, description="GX Data Docs (HTML) are written here per run, one folder per day"
    )
    max_open_total_change: float = Field(
        0.5,
        gt=0,
        description="stop contact when one run would change the creditor's open total by more"
        " than this share (a broken export: amounts doubled, half the items zeroed)",
    )
    min_open_total_cents: int = Field(
        100_000, ge=0, description="the open-total check applies above this total (EUR 1,000)"
    )
    max_due_days: int = Field(
        400, ge=1, description="a due date further than this after the invoice date is absurd"
    )
    chunk_rows: int = Field(
        100_000,
        ge=1,
        description="a day's staged records of one entity and source are validated and"
        " promoted in chunks of about this many (by ranges of the record id: every copy of"
        " an id in one chunk), so the stage's memory does not grow with the portfolio",
    )


class ProposalSettings(Strict):
    accept_min_percentage: float | None = Field(
        None, ge=0, le=100, description="accept a Betaalvoorstel offering at least this %"
    )
    accept_below: Decimal | None = Field(
        None, ge=0, description="accept any Betaalvoorstel when the total claim is at most this"
    )
    max_term_months: int = Field(36, ge=1, le=120)


class WgsSettings(Strict):
    """Statutory early signalling (Wgs) for landlords, energy, water, health insurers."""

    enabled: bool = False
    min_days_late: int = Field(30, ge=1, le=365)
    min_arrears: Decimal = Field(Decimal("0.01"), ge=0)
    repeat_after_days: int = Field(90, ge=1)
    export_dir: str = Field("wgs", description="where the signal files for the portal go")
    messages_point_to_help: bool = True


class DebtHelpSettings(Strict):
    exchange: (
        Annotated[SoapExchangeSettings | PortalExchangeSettings, Field(discriminator="kind")] | None
    ) = Field(None, description="the Schuldenknooppunt route: soap or portal")
    inbox_dir: str | None = Field(
        None, description="shorthand for exchange: {kind: portal, inbox_dir: ...}"
    )
    debt_type: str = Field("overig", description="SoortSchuld in a Saldoverzoek antwoord")
    bsn_allowed: bool = Field(
        False, description="may this creditor keep BSNs (Kennisgeving Publiek)?"
    )
    answer_working_days: int = Field(10, ge=1, le=30)
    status_request_after_days: int = Field(
        120, ge=30, description="ask the counsellor for a status after this long on hold"
    )
    proposals: ProposalSettings = Field(default_factory=ProposalSettings)
    wgs: WgsSettings = Field(default_factory=WgsSettings)

    @model_validator(mode="after")
    def _one_route(self) -> DebtHelpSettings:
        if self.inbox_dir and self.exchange is None:
            self.exchange = PortalExchangeSettings(inbox_dir=self.inbox_dir)
        elif self.inbox_dir:
            raise ValueError("set exchange or inbox_dir, not both")
        return self


class StepSettings(Strict):
    step: str = Field(description="a step with a message template (transforms/messages.py)")
    channels: list[Literal["email", "sms", "letter"]] = Field(min_length=1)
    wait_days: int = Field(7, ge=0, le=365, description="after the previous step (first: overdue)")
    costs: bool = Field(False, description="the WIK 14-day letter (announces the costs)")
    pre_due: bool = Field(False, description="a nudge before the due date")

    @field_validator("step")
    @classmethod
    def _has_template(cls, v: str) -> str:
        from transforms.messages import STEPS

        if v not in STEPS:
            raise ValueError(f"no message template for {v!r}; use one of {', '.join(STEPS)}")
        return v

    @model_validator(mode="after")
    def _law(self) -> StepSettings:
        if self.costs and (self.step != "wik_letter" or self.channels != ["letter"]):
            raise ValueError("only the wik_letter step, sent as a letter, may announce costs")
        return self


class VariantSettings(Strict):
    subject: str | None = Field(None, max_length=120)
    intro: str | None = Field(None, max_length=300, description="an opening sentence (tone)")
    hour: dt.time | None = Field(None, description="send hour, inside the contact window")


class ExperimentSettings(Strict):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    step: str
    variants: dict[str, VariantSettings] = Field(min_length=1)
    holdout: float = Field(0.2, ge=0, lt=1, description="share that keeps the standard message")
    outcome_days: int = Field(14, ge=1, le=90)
    min_contacts: int = Field(30, ge=5)
    active: bool = True

    @field_validator("step")
    @classmethod
    def _not_legal(cls, v: str) -> str:
        from transforms.experiments import LEGAL_STEPS

        if v in LEGAL_STEPS:
            raise ValueError(f"{v} carries legal content: it is never experimented on")
        return v


class PolicySettings(Strict):
    partitions: int = Field(4, description="a power of two up to 1024")
    contacts_per_week: int = Field(2, ge=1, le=14)
    min_days_between_contacts: int = Field(3, ge=0, le=30)
    quiet_start: dt.time = dt.time(20, 0)
    quiet_end: dt.time = dt.time(7, 0)
    send_hour: dt.time = dt.time(9, 30)
    extra_closed_days: list[dt.date] = Field(default_factory=list)
    max_reject_share: float = Field(
        0.5, gt=0, le=1, description="share of bad records that stops contact"
    )
    ambiguous_settle_seconds: int = Field(
        600,
        ge=0,
        le=86_400,
        description="a send that timed out is looked up again, and only sent again "
        "when the provider still does not know it this long after the attempt",
    )
    currencies: list[str] = Field(default_factory=lambda: ["EUR"])
    vat_on_costs: Decimal | None = Field(
        None, description="e.g. 0.21, only for creditors that cannot deduct VAT"
    )
    charge_interest: bool = Field(
        False, description="statutory interest from the end of the 14-day letter's term"
    )
    commercial: bool = Field(False, description="business debtors: the commercial rate")
    interest_rates: list[tuple[dt.date, Decimal, Decimal]] | None = Field(
        None,
        description="[[from, consumer %, commercial %], ...]; default: DOMAIN.md's table",
    )
    segment_thresholds: dict[str, float] = Field(default_factory=dict)
    ladders: dict[
        Literal["on_time", "forgetful", "cant_pay", "wont_pay", "protected"], list[StepSettings]
    ] = Field(
        default_factory=dict,
        description="per segment the steps in order; a segment not named keeps the default",
    )
    match_threshold: float = Field(
        0.80, gt=0, le=1, description="evidence score needed to allocate a payment by itself"
    )
    match_margin: float = Field(
        0.10, ge=0, lt=1, description="lead over the runner-up needed to allocate by itself"
    )
    allocation_order: list[Component] = Field(
        default_factory=lambda: list(STATUTORY_ORDER),
        description="order in which a payment pays an item's parts; art. 6:44 BW by default",
    )
    allocation_scope: Literal["item", "debtor"] = Field(
        "item",
        description="item: each item in its order before the next item; debtor: every"
        " item's costs first, then interest, then principal",
    )

    @field_validator("allocation_order")
    @classmethod
    def _each_component_once(cls, v: list[Component]) -> list[Component]:
        if sorted(v) != ["costs", "interest", "principal"]:
            raise ValueError("name costs, interest and principal, each once, in the order wanted")
        return v

    def match_policy(self) -> MatchPolicy:
        return MatchPolicy(
            threshold=self.match_threshold,
            margin=self.match_margin,
            allocation_order=tuple(self.allocation_order),
            allocation_scope=self.allocation_scope,
        )

    @field_validator("partitions")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v < 1 or v > 1024 or v & (v - 1):
            raise ValueError("use a power of two between 1 and 1024 (1, 2, 4, ... 1024)")
        return v


class RetentionSettings(Strict):
    content_days: int = Field(
        90,
        ge=7,
        le=3650,
        description="rendered messages, statement files, exports and provider event details",
    )
    quarantine_days: int = Field(
        180, ge=7, le=3650, description="the values in resolved quarantine rows"
    )


class ScaleSettings(Strict):
    """Where a creditor's partition tasks (assess, plan) and the bank lane (statements
    fetched beside ingest and validate) run."""

    runner: Literal["processes", "threads", "dask"] = Field(
        "processes",
        description="processes: one pool of worker processes for the cycle (every core);"
        " threads: Prefect's thread pool (one core: the GIL); dask: a Dask cluster"
        " (prefect-dask)",
    )
    max_workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="worker processes or threads (default: processes, the cores this"
        " process may use; threads, Prefect's default)",
    )
    dask_address: str | None = Field(
        None, description="scheduler of a running cluster, e.g. tcp://dask.internal:8786"
    )
    dask_address_env: str | None = Field(
        None, description="environment variable holding the scheduler address"
    )
    dask_workers: int = Field(
        2, ge=1, le=256, description="worker processes of a temporary local cluster (no address)"
    )

    def processes(self) -> int:
        """The worker processes of the ``processes`` runner: ``max_workers``, or the cores
        this process may run on (a container's CPU set, not the host's)."""
        import os

        return self.max_workers or max(len(os.sched_getaffinity(0)), 1)

    def address(self) -> str | None:
        import os

        if self.dask_address_env:
            value = os.environ.get(self.dask_address_env)
            if not value:
                raise ConfigError(
                    f"scale.dask_address_env: environment variable {self.dask_address_env}"
                    " is not set"
                )
            return value
        return self.dask_address

    @model_validator(mode="after")
    def _one_address(self) -> ScaleSettings:
        if self.dask_address and self.dask_address_env:
            raise ValueError("set dask_address or dask_address_env, not both")
        if self.runner == "threads" and (self.dask_address or self.dask_address_env):
            raise ValueError("a Dask address needs runner: dask")
        return self


class CreditorConfig(Strict):
    creditor: CreditorInfo
    branding: Branding
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    sources: dict[str, Source]
    write_back: WriteBackSettings | None = None
    channels: dict[
        Literal["email", "sms", "letter"],
        Annotated[
            OutboxSettings | SendGridSettings | MessageBirdSettings | LetterSettings,
            Field(discriminator="kind"),
        ],
    ]
    debt_help: DebtHelpSettings = Field(default_factory=DebtHelpSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    experiments: list[ExperimentSettings] = Field(default_factory=list)
    self_service: SelfServiceSettings | None = Field(
        None, description="the personal link in every message and the page it opens"
    )
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _csv_mappings(self) -> CreditorConfig:
        for name, src in self.sftp_sources().items():
            if src.csv is not None:
                try:
                    CsvMapping.model_validate(src.csv)
                except ValidationError as exc:
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise ValueError(f"sources.{name}.csv.{where}: {first['msg']}") from None
        return self

    def csv_mapping(self, source: str) -> CsvMapping | None:
        raw = self.sftp_sources()[source].csv
        return None if raw is None else CsvMapping.model_validate(raw)

    @model_validator(mode="after")
    def _write_back_target(self) -> CreditorConfig:
        if self.write_back is not None:
            target = self.sources.get(self.write_back.target)
            if not isinstance(target, READER_KINDS):
                name = self.write_back.target
                raise ValueError(
                    f"write_back.target {name!r} must name an odbc or salesforce source"
                )
        return self

    # set by load(): where the file lives and its hash
    base_dir: Path = Field(default=Path("."), exclude=True)
    sha256: str = Field(default="", exclude=True)

    def path(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.base_dir / q)

    def ledger_url(self) -> str:
        import os

        if self.ledger.url_secret is not None:
            secret = resolve_secret(self.ledger.url_secret, self.base_dir)
            assert secret is not None
            return secret.get_secret_value()
        if self.ledger.url_env:
            url = os.environ.get(self.ledger.url_env)
            if not url:
                raise ConfigError(
                    f"ledger.url_env: environment variable {self.ledger.url_env} is not set"
                )
            return url
        if self.ledger.url:
            if self.ledger.url.startswith("sqlite:///") and not self.ledger.url.startswith(
                "sqlite:////"
            ):
                return f"sqlite:///{self.path(self.ledger.url[len('sqlite:///') :])}"
            return self.ledger.url
        return f"sqlite:///{self.base_dir / 'ledger.sqlite'}"

    def odbc_sources(self) -> dict[str, OdbcSettings]:
        return {k: v for k, v in self.sources.items() if isinstance(v, OdbcSettings)}

    def reader_sources(self) -> dict[str, ReaderSettings]:
        """Sources that debtors and invoices are read from (ERP/CRM)."""
        return {k: v for k, v in self.sources.items() if isinstance(v, READER_KINDS)}

    def write_back_entities(self) -> set[str]:
        """The entities the write-back target has a mapping for."""
        if self.write_back is None:
            return set()
        return set(self.reader_sources()[self.write_back.target].write_back)

    def sftp_sources(self) -> dict[str, SftpSettings]:
        return {k: v for k, v in self.sources.items() if isinstance(v, SftpSettings)}


class ConfigError(ValueError):
    """A configuration the hub refuses, with the field and the fix."""


def _explain(exc: ValidationError, path: Path) -> str:
    lines = [f"{path}: the configuration is not valid ({exc.error_count()} problem(s)):"]
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        fix = ""
        if err["type"] == "missing":
            fix = " - add this field"
        elif err["type"] == "extra_forbidden":
            fix = " - remove it or check its spelling"
        elif err["type"] == "union_tag_invalid":
            fix = " - set kind to odbc, salesforce, exact_online or sftp"
        lines.append(f"  - {where}: {msg}{fix}")
    return "\n".join(lines)


def load(path: str | Path) -> CreditorConfig:
    p = Path(path)
    try:
        raw_bytes = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the configuration file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping with creditor, branding, sources, channels")
    try:
        cfg = CreditorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, p)) from None
    cfg.base_dir = p.resolve().parent
    cfg.sha256 = hashlib.sha256(raw_bytes).hexdigest()
    return cfg


def resolve_secret(ref: SecretRef | None, base_dir: Path | None = None) -> SecretStr | None:
    """Env and file references directly; block references through Prefect."""
    if ref is None:
        return None
    if ref.block:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(ref.block)  # sync context: a block, not a coroutine
        value = block.get()
        return SecretStr(str(value))
    return ref.resolve_local(base_dir)


__all__ = ["ConfigError", "CreditorConfig", "load", "resolve_secret"]
