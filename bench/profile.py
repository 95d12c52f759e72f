"""Where a stage of the daily cycle spends its time: ``python -m bench.profile``.

Runs the cycle's stages in order on a fresh copy of the seeded portfolio (see
``bench.cycle``), and the named ones under ``cProfile``; prints each profiled stage's
functions by cumulative and by own time. ``--again`` profiles the same day's second run
instead of the first (what an incremental run still costs).

``--sampler`` uses pyinstrument (a sampling profiler) instead: cProfile's per-call cost
inflates code that makes many small calls (a value-by-value parse looked like half the
ingest under cProfile; sampled, it was a tenth), so the sampler's split is the one to
trust for wall time, cProfile's for call counts.

    python -m bench.profile --debtors 50000 --stage reconcile --stage assess
    python -m bench.profile --stage validate --save /tmp/p   # then pstats on the file
    python -m bench.profile --stage ingest --sampler          # wall time as sampled
    python -m bench.profile --stage validate --sampler --ledger-url postgresql+psycopg2://…
    python -m bench.profile --debtors 250000 --stage reconcile --plain --log  # no profiler
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cycle import NOW, _empty_pg, fresh_copy, template

STAGES = ("ingest", "validate", "debt_help", "reconcile", "assess", "plan", "send", "write_back")


def _stages(ctx: Any, port: int) -> list[tuple[str, Callable[[], Any]]]:
    from bench.cycle import _plan, _reconcile
    from flows import debt_help, stages
    from transforms.validation import Validator

    n = ctx.cfg.policy.partitions
    return [
        ("ingest", lambda: [stages.ingest_entity(ctx, "erp", e) for e in stages.ENTITIES]),
        ("validate", lambda: stages.validate_staged(ctx, Validator())),
        ("debt_help", lambda: debt_help.exchange_messages(ctx)),
        ("reconcile", lambda: _reconcile(ctx, port)),
        ("assess", lambda: [stages.assess_partition(ctx, p, n) for p in range(n)]),
        ("plan", lambda: _plan(ctx, n=n)),
        ("send", lambda: [stages.send_channel(ctx, ch) for ch in ctx.cfg.channels]),
        ("write_back", lambda: stages.write_back(ctx)),
    ]


def _report(name: str, prof: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.strip_dirs()
    out.write(f"\n===== {name}: by cumulative time =====\n")
    st.sort_stats("cumulative").print_stats(top)
    out.write(f"\n===== {name}: by own time =====\n")
    st.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    from flows.context import make_ctx
    from flows.demo import sftp_server

    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("--debtors", type=int, default=50_000)
    ap.add_argument("--months", type=int, default=4)
    ap.add_argument("--statement-lines", type=int, default=None, help="default: 1.2 x debtors")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--stage", action="append", required=True, help="repeatable")
    ap.add_argument("--again", action="store_true", help="profile the second run of the day")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument(
        "--sampler",
        action="store_true",
        help="sample with pyinstrument (dev extra) instead of cProfile",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="no profiler: time the stages up to the last one named, as they run (for a"
        " before and after of a change; with --log, the stages' own split)",
    )
    ap.add_argument(
        "--log",
        action="store_true",
        help="print what the stages log (vangnet, INFO): their own split of the time"
        " (match: read, weighed, written; a statement file: downloaded, checked, stored)",
    )
    ap.add_argument("--workdir", default="var/bench")
    ap.add_argument(
        "--ledger-url",
        default=None,
        help="a PostgreSQL ledger to profile on (emptied first), as bench.cycle takes it",
    )
    ap.add_argument(
        "--save",
        default=None,
        help="also write each profiled stage's stats to <SAVE>-<run>-<stage>.pstats "
        "(for pstats' print_callers, snakeviz, ...)",
    )
    args = ap.parse_args(argv)
    if args.log:
        said = logging.StreamHandler(sys.stdout)
        said.setFormatter(logging.Formatter("  log: %(message)s"))
        logging.getLogger("vangnet").addHandler(said)
        logging.getLogger("vangnet").setLevel(logging.INFO)
    unknown = set(args.stage) - set(STAGES)
    if unknown:
        ap.error(f"no stage {', '.join(sorted(unknown))}: the stages are {', '.join(STAGES)}")

    lines = args.statement_lines if args.statement_lines is not None else int(args.debtors * 1.2)
    root = Path(args.workdir).resolve()
    tpl = template(root, args.debtors, args.months, lines, args.partitions)
    cfg = fresh_copy(tpl, root / "profile", args.ledger_url)
    if args.ledger_url:
        _empty_pg(args.ledger_url)
    with sftp_server(root / "profile") as srv:
        ctx = make_ctx(str(cfg), NOW)
        runs = ("first", "again") if args.again else ("first",)
        names = [n for n, _ in _stages(ctx, srv.port)]
        stop_after = max(names.index(n) for n in args.stage)  # the last profiled stage
        for run in runs:
            for i, (name, fn) in enumerate(_stages(ctx, srv.port)):
                if run == runs[-1] and i > stop_after:
                    return  # the stages after it tell nothing
                profiled = name in args.stage and (run == "again") == args.again and not args.plain
                t = time.perf_counter()
                if not profiled:
                    fn()
                    print(f"{run} {name:<11} {time.perf_counter() - t:7.2f} s", flush=True)
                elif args.sampler:
                    _sampled(f"{run} {name}", fn, args)
                else:
                    prof = cProfile.Profile()
                    prof.enable()
                    fn()
                    prof.disable()
                    print(f"{run} {name:<11} {time.perf_counter() - t:7.2f} s", flush=True)
                    print(_report(f"{run} {name}", prof, args.top), flush=True)
                    if args.save:
                        prof.dump_stats(f"{args.save}-{run}-{name}.pstats")


def _sampled(title: str, fn: Callable[[], Any], args: argparse.Namespace) -> None:
    from pyinstrument import Profiler

    prof = Profiler(interval=0.002)
    t = time.perf_counter()
    prof.start()
    fn()
    prof.stop()
    print(f"{title:<17} {time.perf_counter() - t:7.2f} s (sampled)", flush=True)
    print(prof.output_text(show_all=False, short_mode=False), flush=True)
    if args.save:
        Path(f"{args.save}-{title.replace(' ', '-')}.html").write_text(prof.output_html())


if __name__ == "__main__":
    main()
