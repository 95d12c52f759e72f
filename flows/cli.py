"""The ``vangnet`` command line (typer). Heavy imports (Prefect, GX) happen inside the
commands that need them, so quick commands stay quick."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="vangnet: social debt collection hub"
)
statements_app = typer.Typer(no_args_is_help=True, help="Bank statements")
reference_app = typer.Typer(no_args_is_help=True, help="Payment references (betalingskenmerk, RF)")
fees_app = typer.Typer(no_args_is_help=True, help="Statutory fees")
creditor_app = typer.Typer(no_args_is_help=True, help="Creditor operations")
exact_app = typer.Typer(no_args_is_help=True, help="Exact Online authorisation")
app.add_typer(statements_app, name="statements")
app.add_typer(reference_app, name="reference")
app.add_typer(fees_app, name="fees")
app.add_typer(creditor_app, name="creditor")
app.add_typer(exact_app, name="exact")
debt_help_app = typer.Typer(no_args_is_help=True, help="The Schuldenknooppunt exchange")
holds_app = typer.Typer(no_args_is_help=True, help="Holds: debtors collection stopped for")
wgs_app = typer.Typer(no_args_is_help=True, help="Statutory early signalling (Wgs)")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records held back by validation")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(debt_help_app, name="debt-help")
app.add_typer(holds_app, name="holds")
app.add_typer(wgs_app, name="wgs")
blocks_app = typer.Typer(no_args_is_help=True, help="Prefect blocks holding the secrets")
automations_app = typer.Typer(no_args_is_help=True, help="Prefect automations (alerts)")
app.add_typer(blocks_app, name="blocks")
app.add_typer(automations_app, name="automations")

CREDITOR = typer.Option(..., "--creditor", help="the creditor's YAML file")
OPERATOR = typer.Option(..., help="who decides (an id, for the audit log)")


def _quiet_prefect() -> None:
    """Local ephemeral Prefect by default, no telemetry."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(msg, err=True)
    raise typer.Exit(code)


@app.command()
def demo(
    workdir: Path = typer.Option(
        Path("var/demo"), help="folder for the demo creditor (seeded on first use)"
    ),
    debtors: int = typer.Option(2000, min=10, help="portfolio size when seeding"),
    as_json: bool = typer.Option(False, "--json", help="end with a JSON summary line"),
    now: str | None = typer.Option(
        None, help="the cycle's clock (ISO 8601, Europe/Amsterdam if no zone)"
    ),
) -> None:
    """Seed the demo creditor in WORKDIR (first use) and run the daily cycle on it."""
    _quiet_prefect()
    from flows.context import clock
    from flows.cycle import demo_cycle

    result = demo_cycle(str(workdir.resolve()), debtors, clock(now).isoformat())
    summary = _summary(workdir.resolve() / "creditor.yaml", result)
    sample = _sample_link(workdir.resolve())
    if sample:
        summary["self_service_sample"] = sample
    _report(summary, as_json)
    if sample and not as_json:
        typer.echo(
            f"A debtor's own page: {sample}\n(start it with: vangnet serve --creditor "
            f"{workdir.resolve() / 'creditor.yaml'})"
        )


def _sample_link(workdir: Path) -> str | None:
    """The self-service link of one message the demo sent (for a first look)."""
    import re

    for f in sorted((workdir / "outbox" / "email").glob("*/*.txt"))[:1]:
        found = re.findall(r"https?://\S+/r/[A-Za-z0-9_.-]+", f.read_text())
        if found:
            return str(found[0])
    return None


@app.command()
def run(
    creditor: Path = typer.Option(..., help="the creditor's YAML file"),
    as_json: bool = typer.Option(False, "--json"),
    now: str | None = typer.Option(None, help="the cycle's clock (ISO 8601)"),
) -> None:
    """Run the daily cycle for a configured creditor."""
    _quiet_prefect()
    from flows.config import ConfigError, load

    try:
        cfg = load(creditor)
    except ConfigError as exc:
        _fail(str(exc))
    from flows.context import clock
    from flows.cycle import creditor_tags, daily_cycle

    with creditor_tags(cfg.creditor.id):  # as a deployment's run has them
        result = daily_cycle(str(creditor.resolve()), clock(now).isoformat(), None)
    _report(_summary(creditor, result), as_json)


def _summary(cfg_path: Path, result: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from flows.context import make_ctx
    from ledger import schema as s

    ctx = make_ctx(str(cfg_path.resolve()))
    with ctx.engine.connect() as conn:

        def count(t: Any, *where: Any) -> int:
            stmt = (
                select(func.count())
                .select_from(t)
                .where(t.c.creditor_id == ctx.creditor_id, *where)
            )
            return int(conn.execute(stmt).scalar() or 0)

        out = {
            "creditor": result["creditor"],
            "cycle_date": result["cycle_date"],
            "debtors": count(s.debtors),
            "invoices": count(s.invoices),
            "quarantined": count(s.quarantine, s.quarantine.c.status == "open"),
            "holds": count(s.holds, s.holds.c.lifted_at.is_(None)),
            "skn_answers_sent": result["debt_help"].get("answers_sent", 0)
            + (result.get("debt_help_last_look") or {}).get("answers_sent", 0),
            "skn_answers_due": count(
                s.skp_messages,
                s.skp_messages.c.answer_due.is_not(None),
                s.skp_messages.c.status.in_(["new", "review"]),
            ),
            "wgs_signals": (result["debt_help"].get("wgs") or {}).get("signals", 0),
            "payments_matched": result["reconcile"]["matched"],
            "payments_unmatched": result["reconcile"]["unmatched"],
            "segments": result["assess"]["segments"],
            "planned": result["plan"]["planned"],
            "messages_sent": {ch: r["sent"] for ch, r in result["send"].items()},
            "messages_waiting": {ch: r["waiting"] for ch, r in result["send"].items()},
            "write_backs": result["write_back"].get("applied", 0),
            "write_back_conflicts": result["write_back"].get("conflict", 0),
            "stopped": result["validate"]["stopped"],
        }
    return out


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"vangnet daily cycle: {summary['creditor']} {summary['cycle_date']}")
        t.add_column("what")
        t.add_column("result")
        for k, v in summary.items():
            t.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        Console().print(t)
    else:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    if summary.get("stopped"):
        raise typer.Exit(3)


@creditor_app.command("resume")
def creditor_resume(
    creditor: Path = typer.Option(..., help="the creditor's YAML file"),
    operator: str = typer.Option(..., help="who decides (an id, for the audit log)"),
) -> None:
    """Lift a stop after a broken export was looked at (audited)."""
    from sqlalchemy import update

    from flows.context import make_ctx
    from ledger import schema as s
    from ledger.store import audit

    ctx = make_ctx(str(creditor))
    with ctx.engine.begin() as conn:
        conn.execute(
            update(s.creditors)
            .where(s.creditors.c.creditor_id == ctx.creditor_id)
            .values(stopped_reason=None)
        )
        audit(conn, ctx.creditor_id, operator, "creditor.resumed", ctx.creditor_id, {})
    typer.echo(f"{ctx.creditor_id}: contact resumed")


def _table(rows: list[dict[str, Any]], title: str, as_json: bool) -> None:
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str, sort_keys=True) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in rows[0] if rows else ["-"]:
        t.add_column(col)
    for r in rows:
        t.add_row(*(str(v) for v in r.values()))
    Console().print(t)


@app.command()
def explain(
    debtor: str,
    creditor: Path = CREDITOR,
    as_json: bool = typer.Option(False, "--json", help="the facts behind the note, as JSON"),
    now: str | None = typer.Option(None, help="the clock (ISO 8601), default: now"),
) -> None:
    """One debtor as a caseworker's note: segment and why, signals, holds, preferences,
    what is planned or why nothing is."""
    from flows.context import make_ctx
    from flows.explain import explain as explain_debtor

    try:
        out = explain_debtor(make_ctx(str(creditor), now), debtor)
    except LookupError as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(out, default=str, ensure_ascii=False) + "\n")
    else:
        typer.echo(out["note"])


@app.command()
def serve(
    creditor: list[Path] = typer.Option(..., "--creditor", help="one or more creditor files"),
    host: str = typer.Option("127.0.0.1", help="the address to listen on"),
    port: int = typer.Option(8000, help="the port"),
) -> None:
    """The self-service page and the provider webhooks (uvicorn). No request lines are
    logged: a personal link is a credential."""
    import uvicorn

    from portal.app import create_app

    app_ = create_app([str(c) for c in creditor])
    uvicorn.run(app_, host=host, port=port, access_log=False, log_level="warning")


@app.command("revoke-link")
def revoke_link(
    debtor: str,
    creditor: Path = CREDITOR,
    message: str | None = typer.Option(None, help="only the link in this message (its id)"),
    reason: str = typer.Option(..., help="why (audited)"),
    operator: str = OPERATOR,
) -> None:
    """Withdraw a debtor's self-service link(s) before they expire (a lost phone, say)."""
    from flows.context import make_ctx
    from portal.app import revoke

    try:
        revoke(make_ctx(str(creditor)), debtor, message[:12] if message else None, reason, operator)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"{debtor}: {'that link' if message else 'every link'} revoked")


@app.command()
def preview(
    creditor: Path = CREDITOR,
    step: str = typer.Option(..., help="friendly_reminder, wik_letter, ..."),
    segment: str = typer.Option("forgetful", help="the segment the sample debtor is in"),
    channel: str = typer.Option("email", help="email, sms or letter"),
    language: str = typer.Option("nl", help="nl or en"),
) -> None:
    """Render a sample message with the creditor's branding, before it ever goes out."""
    import datetime as dt

    from flows.config import ConfigError, load
    from transforms import messages
    from transforms.segments import LABELS_NL
    from transforms.wik import collection_costs_cents, wik_deadline

    try:
        cfg = load(creditor)
    except ConfigError as exc:
        _fail(str(exc))
    if step not in messages.STEPS:
        _fail(f"no template for {step!r}; steps: {', '.join(messages.STEPS)}")
    b = cfg.branding
    ref = "5000056789012345"
    amount = 74_312
    data = {
        "name": "J. de Vries",
        "amount_cents": amount,
        "costs_cents": collection_costs_cents(amount) if step == "wik_letter" else 0,
        "deadline": wik_deadline(dt.date.today()) if step == "wik_letter" else None,
        "reference": ref,
        "payment_link": b.payment_link.format(reference=ref, amount=f"{amount / 100:.2f}"),
        "phone": b.phone,
        "email": b.email,
        "debt_help": b.debt_help,
        "creditor_name": b.display_name,
    }
    typer.echo(
        f"# {step} for a debtor in segment {segment} ({LABELS_NL.get(segment, segment)}), "
        f"by {channel}, in {language}\n"
    )
    if channel == "sms":
        typer.echo(messages.sms_text(step, language, data))
        return
    subject, body = messages.render(step, language, data)
    typer.echo(f"Subject: {subject}\n\n{body}")


@quarantine_app.command("list")
def quarantine_list(
    creditor: Path = CREDITOR,
    entity: str | None = typer.Option(
        None, help="debtors, invoices, payments, statement_line, ..."
    ),
    rule: str | None = typer.Option(None, help="only records that broke this rule"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Open quarantined records, oldest first."""
    from flows.context import make_ctx
    from flows.quarantine import list_open

    _table(list_open(make_ctx(str(creditor)), entity, rule), "Quarantine", as_json)


@quarantine_app.command("show")
def quarantine_show(record: int, creditor: Path = CREDITOR) -> None:
    """One record: every rule it broke and its fields (personal ones masked)."""
    from flows.context import make_ctx
    from flows.quarantine import show

    try:
        out = show(make_ctx(str(creditor)), record)
    except LookupError as exc:
        _fail(str(exc))
    sys.stdout.write(json.dumps(out, indent=2, default=str, ensure_ascii=False) + "\n")


@quarantine_app.command("release")
def quarantine_release(
    records: list[int], creditor: Path = CREDITOR, operator: str = OPERATOR
) -> None:
    """Re-validate records and take those that pass now into the ledger (audited)."""
    from flows.context import make_ctx
    from flows.quarantine import release

    try:
        out = release(make_ctx(str(creditor)), records, operator)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    for qid in out["released"]:
        typer.echo(f"{qid}: released")
    for qid, rules in out["still_failing"].items():
        typer.echo(f"{qid}: still fails {', '.join(rules)}: kept in quarantine")
    if out["still_failing"]:
        raise typer.Exit(1)


@quarantine_app.command("discard")
def quarantine_discard(
    records: list[int],
    creditor: Path = CREDITOR,
    reason: str = typer.Option(..., help="why (audited)"),
    operator: str = OPERATOR,
) -> None:
    """Give up on records for good (audited, with the reason)."""
    from flows.context import make_ctx
    from flows.quarantine import discard

    try:
        n = discard(make_ctx(str(creditor)), records, operator, reason)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"{n} record(s) discarded")


@debt_help_app.command("run")
def debt_help_run(creditor: Path = CREDITOR, as_json: bool = typer.Option(False, "--json")) -> None:
    """One round with the Schuldenknooppunt now: fetch, store, confirm, handle, answer."""
    from flows.context import make_ctx
    from flows.debt_help import exchange_messages

    out = exchange_messages(make_ctx(str(creditor)))
    due = out.pop("due", [])
    _table([out], "Schuldenknooppunt round", as_json)
    if due and not as_json:
        typer.echo(f"{len(due)} message(s) owe an answer: vangnet debt-help due")


@debt_help_app.command("due")
def debt_help_due(creditor: Path = CREDITOR, as_json: bool = typer.Option(False, "--json")) -> None:
    """Messages owing an answer (10 working days), soonest deadline first."""
    from flows.context import make_ctx
    from flows.debt_help import due_answers

    _table(due_answers(make_ctx(str(creditor))), "Schuldenknooppunt: answers due", as_json)


@debt_help_app.command("answer")
def debt_help_answer(
    message_id: str,
    decision: str = typer.Argument(..., help="accept | reject | no-cooperation | done"),
    creditor: Path = CREDITOR,
    reason: str = typer.Option(..., help="why (sent with the answer, audited)"),
    operator: str = OPERATOR,
) -> None:
    """Answer a message in review; the answer goes out with the next exchange."""
    from flows.context import make_ctx
    from flows.debt_help import answer_review

    try:
        status = answer_review(make_ctx(str(creditor)), message_id, decision, reason, operator)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"{message_id}: {status}")


@holds_app.command("list")
def holds_list(creditor: Path = CREDITOR, as_json: bool = typer.Option(False, "--json")) -> None:
    """Active holds: who, why, since when."""
    from sqlalchemy import select

    from flows.context import make_ctx
    from ledger import schema as s

    ctx = make_ctx(str(creditor))
    h = s.holds
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(h.c.debtor_id, h.c.kind, h.c.reason, h.c.starts_on, h.c.source_message_id)
            .where(h.c.creditor_id == ctx.creditor_id, h.c.lifted_at.is_(None))
            .order_by(h.c.starts_on, h.c.debtor_id)
        ).all()
    _table([dict(r._mapping) for r in rows], f"Holds of {ctx.creditor_id}", as_json)


@holds_app.command("lift")
def holds_lift(
    debtor: str,
    creditor: Path = CREDITOR,
    reason: str = typer.Option(..., help="why the hold ends (audited)"),
    operator: str = OPERATOR,
) -> None:
    """Lift a debtor's holds by hand (e.g. the counsellor confirmed the end by phone)."""
    from flows.context import make_ctx
    from flows.debt_help import lift_hold_by_operator

    try:
        n = lift_hold_by_operator(make_ctx(str(creditor)), debtor, operator, reason)
    except ValueError as exc:
        _fail(str(exc))
    if n == 0:
        _fail(f"{debtor} has no active hold")
    typer.echo(f"{debtor}: {n} hold(s) lifted")


@wgs_app.command("export")
def wgs_export(creditor: Path = CREDITOR) -> None:
    """Select today's early signals and write the CSV/JSON for the municipality."""
    from flows.context import make_ctx
    from flows.debt_help import wgs_signals

    out = wgs_signals(make_ctx(str(creditor)))
    if not out["enabled"]:
        _fail("early signalling is off for this creditor (debt_help.wgs.enabled)")
    typer.echo(f"{out['signals']} signal(s)" + (f": {out['file']}" if out["file"] else ""))


@wgs_app.command("outcomes")
def wgs_outcomes(file: Path, creditor: Path = CREDITOR) -> None:
    """Record the outcomes the municipality fed back (CSV: signaal_id;uitkomst;datum)."""
    from flows.context import make_ctx
    from flows.debt_help import record_wgs_outcomes

    out = record_wgs_outcomes(make_ctx(str(creditor)), file)
    typer.echo(f"{out['recorded']} recorded, {out['unknown']} unknown signal id(s)")
    if out["unknown"]:
        raise typer.Exit(1)


@exact_app.command("auth-url")
def exact_auth_url(
    creditor: Path = typer.Option(..., help="the creditor's YAML file"),
    source: str = typer.Option(..., help="the exact_online source's name"),
) -> None:
    """Print the URL where the creditor's Exact Online user grants vangnet access."""
    from flows.context import make_ctx
    from flows.stages import exact_client

    typer.echo(exact_client(make_ctx(str(creditor)), source).authorization_url())


@exact_app.command("authorize")
def exact_authorize(
    code: str,
    creditor: Path = typer.Option(..., help="the creditor's YAML file"),
    source: str = typer.Option(..., help="the exact_online source's name"),
) -> None:
    """Trade the code from the redirect for tokens, kept in the ledger (never printed)."""
    from connectors.errors import ConnectorError
    from flows.context import make_ctx
    from flows.stages import exact_client

    try:
        exact_client(make_ctx(str(creditor)), source).authorize(code)
    except ConnectorError as exc:
        _fail(str(exc), 1)
    typer.echo(f"{source}: authorised; tokens stored in the ledger")


@statements_app.command("parse")
def statements_parse(file: Path) -> None:
    """Print one JSON object per booked entry (or per transaction of a batch entry) of a
    CAMT.053 or MT940 file."""
    from transforms.statements import StatementError, entries_as_json_rows, parse_statement

    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    try:
        df = parse_statement(data, file.name)
    except StatementError as exc:
        _fail(str(exc), 1)
    for row in entries_as_json_rows(df):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


@reference_app.command("check")
def reference_check(ref: str) -> None:
    """Exit 0 when REF is a valid betalingskenmerk or RF reference, 1 otherwise."""
    from transforms.references import is_valid_reference

    ok = is_valid_reference(ref)
    typer.echo("valid" if ok else "invalid")
    raise typer.Exit(0 if ok else 1)


@reference_app.command("new")
def reference_new(number: str) -> None:
    """The 16-digit betalingskenmerk for NUMBER (up to 15 digits)."""
    from transforms.references import new_betalingskenmerk

    try:
        typer.echo(new_betalingskenmerk(number))
    except ValueError as exc:
        _fail(str(exc))


@fees_app.command("wik")
def fees_wik(
    amount: str,
    vat: bool = typer.Option(False, "--vat", help="add 21% VAT (creditor cannot deduct VAT)"),
) -> None:
    """Statutory collection costs for a principal AMOUNT in euros, as JSON."""
    from transforms.wik import collection_costs

    try:
        principal = Decimal(amount.replace(",", "."))
    except ArithmeticError:
        _fail(f"{amount!r} is not an amount")
    costs = collection_costs(principal, Decimal("0.21") if vat else None)
    typer.echo(json.dumps({"principal": f"{principal:.2f}", "collection_costs": f"{costs:.2f}"}))


@app.command()
def doctor(
    creditor: Path = CREDITOR,
    as_json: bool = typer.Option(False, "--json"),
    work_pool: str = typer.Option("vangnet-process", help="the work pool the deployments use"),
    sftp_port: int | None = typer.Option(None, help="port of the statement SFTP (loopback demo)"),
) -> None:
    """Check every connection the creditor's configuration names: reachability, login,
    host keys, certificates, rate-limit budgets. Exit 1 when one fails."""
    _quiet_prefect()
    from flows.doctor import as_dicts, render, run_checks

    checks = run_checks(creditor, work_pool, sftp_port)
    typer.echo(json.dumps(as_dicts(checks), indent=2) if as_json else render(checks))
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    debtors: int = typer.Option(250_000, help="portfolio size (4 invoices each by default)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Each stage of the daily cycle on the embedded default: seconds, rows/s, peak memory,
    and the same work done bare as the limit. More options: python -m bench.cycle --help
    (--scaling, --prefect, --ledger-url, --statement-lines)."""
    _quiet_prefect()
    from bench.cycle import main as run_bench

    run_bench(["--debtors", str(debtors), *(["--json"] if as_json else []), *ctx.args])


@app.command("retention")
def retention_purge(creditor: Path = CREDITOR, now: str | None = typer.Option(None)) -> None:
    """Remove message content, statement files and exports older than the creditor's
    retention (the daily cycle does this at its end too); audited with the counts."""
    from flows.context import make_ctx
    from flows.retention import purge, summary_line

    typer.echo(summary_line(purge(make_ctx(str(creditor), now))))


@blocks_app.command("register")
def blocks_register(
    creditor: Path = CREDITOR,
    from_dir: Path | None = typer.Option(
        None, help="a folder with one file per block, named as the block (key files, say)"
    ),
    overwrite: bool = typer.Option(False, help="replace blocks that exist"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create the Secret blocks the configuration names on the Prefect server, from
    VANGNET_SECRET_<NAME> variables or files. Exit 1 while one is still missing."""
    _quiet_prefect()
    from dataclasses import asdict

    from flows.blocks import register
    from flows.config import ConfigError, load

    try:
        cfg = load(creditor)
    except ConfigError as exc:
        _fail(str(exc))
    done = register(cfg, from_env=True, from_dir=from_dir, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in done], indent=2))
    else:
        for r in done:
            typer.echo(f"{r.status:<9} {r.block:<40} {r.field}  {r.source}".rstrip())
        if not done:
            typer.echo("the configuration names no Prefect Secret blocks")
    if any(r.status == "missing" for r in done):
        raise typer.Exit(1)


@automations_app.command("install")
def automations_install(
    notify: str = typer.Option(
        ..., help="the notification block as <type-slug>/<name>, e.g. slack-webhook/ops-alerts"
    ),
    recipe: Path | None = typer.Option(None, help="default: deployments/automations.yaml"),
) -> None:
    """Create or replace the alert automations (failed run, stopped creditor, missing
    cycle) on the Prefect server, all notifying one block."""
    _quiet_prefect()
    from flows.automations import RECIPE, install

    for row in install(notify, recipe or RECIPE):
        typer.echo(f"{row['status']:<9} {row['automation']}  {row['id']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
