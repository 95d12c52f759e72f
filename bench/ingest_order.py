"""One source's entities read side by side in threads, or one after the other:
``python -m bench.ingest_order [--debtors N] [--rounds R]``.

The ingest subflow runs a task per source and entity on Prefect's thread pool. This
times the stage's own work both ways, without Prefect, on fresh copies of the seeded
portfolio (``bench.cycle``'s template), the two ways in turn within one process so that
the machine's hour is the same for both: the source's entities each in a thread of
their own, started together (what the subflow did until 845968f), or one after the
other in this thread (what it does since, within one source).

It prints each round's seconds and writes them to
``bench/results/ingest-order-<date>-<debtors>.json``.

    python -m bench.ingest_order --debtors 250000 --rounds 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.cycle import NOW, fresh_copy, save_result, template


def _read(cfg: Path, side_by_side: bool) -> tuple[float, int]:
    """Seconds, and rows staged (the same both ways, or the comparison is void)."""
    from flows import stages
    from flows.context import make_ctx

    ctx = make_ctx(str(cfg), NOW)
    ctx.engine  # noqa: B018 - migrated before the clock starts, as in the cycle
    source = "erp"
    entities = [e for e in stages.ENTITIES if e in ctx.cfg.reader_sources()[source].entities]

    def read(entity: str) -> int:
        return int(stages.ingest_entity(ctx, source, entity)["rows"])

    t = time.perf_counter()
    if side_by_side:
        with ThreadPoolExecutor(len(entities)) as threads:
            rows = sum(threads.map(read, entities))  # an entity's error is raised here
    else:
        rows = sum(read(e) for e in entities)
    return time.perf_counter() - t, rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--debtors", type=int, default=250_000)
    ap.add_argument("--months", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    root = Path("var/bench")
    tpl = template(root, args.debtors, args.months, int(args.debtors * 1.2), args.partitions)
    runs: dict[str, list[float]] = {"side_by_side": [], "one_after_another": []}
    staged: set[int] = set()
    for r in range(args.rounds):
        for way in runs:
            cfg = fresh_copy(tpl, root / "run", None)
            took, rows = _read(cfg, way == "side_by_side")
            runs[way].append(round(took, 2))
            staged.add(rows)
            print(
                f"round {r + 1}: {way.replace('_', ' '):<18} {took:>7.2f} s {rows} rows", flush=True
            )
    if len(staged) != 1:
        raise SystemExit(f"the two ways staged different row counts: {sorted(staged)}")
    return save_result(
        "ingest_order",
        f"ingest-order-{dt.date.today().isoformat()}-{args.debtors}.json",
        {"debtors": args.debtors, "rows": staged.pop(), "seconds": runs},
    )


if __name__ == "__main__":
    main()
