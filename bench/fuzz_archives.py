"""Fuzz the model archive readers: N seeded mutations of a sound archive through Network.load, read_archive and
read_archive_metadata. Every reader must load the file or raise ModelFormatError; nothing may execute; each
case's peak memory must stay under a bound derived from the base archive's size.

    nice -n 19 .venv/bin/python bench/fuzz_archives.py --cases 10000 --seed 0

Prints the cases per mutation kind and outcome, per reader and outcome, the peak memory (tracemalloc and
peak-RSS rise) with the case that reached it, and every escape with the command that replays it alone
(``--first CASE --cases 1``). Exits 1 when anything escaped, executed or went over the memory bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import archive_fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="first case index (replay one case: --first N --cases 1)")
    parser.add_argument("--no-rss", action="store_true", help="skip the per-case peak-RSS measurement")
    args = parser.parse_args()

    start = time.perf_counter()
    results: list[archive_fuzz.CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="deepspark-fuzz-") as tmp:
        work = Path(tmp)
        for result in archive_fuzz.run(args.seed, args.cases, work, rss=not args.no_rss, first=args.first):
            results.append(result)
            if len(results) % 1000 == 0:
                print(f"  {len(results)} cases, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        base_size = (work / "base.zip").stat().st_size
    elapsed = time.perf_counter() - start
    bound = archive_fuzz.memory_bound(base_size)

    kinds = Counter(r.kind for r in results)
    summary = archive_fuzz.summarize(results)
    outcomes = sorted({label for _, label in summary["per_kind"]})
    print(f"archive fuzzing: {len(results)} cases, seed {args.seed}, first case {args.first}, {elapsed:.0f} s")
    print(f"base archive: {base_size} bytes; readers: {', '.join(archive_fuzz.READERS)}")
    print()
    print("cases per mutation kind, reader outcomes summed over the 3 readers:")
    header = f"  {'kind':<20}{'cases':>7}" + "".join(f"{o:>18}" for o in outcomes)
    print(header)
    for kind in archive_fuzz.KINDS:
        row = "".join(f"{summary['per_kind'][(kind, o)]:>18}" for o in outcomes)
        print(f"  {kind:<20}{kinds[kind]:>7}{row}")
    print()
    print("outcomes per reader:")
    for reader in archive_fuzz.READERS:
        counts = summary["per_reader"]
        row = ", ".join(f"{o} {counts[(reader, o)]}" for o in outcomes if counts[(reader, o)])
        print(f"  {reader:<24}{row}")

    traced = max(results, key=lambda r: r.traced_peak)
    rss = max(results, key=lambda r: r.rss_rise)
    print()
    print(f"memory bound per case: {bound / 2**20:.1f} MiB (64 MiB + 256 x the base archive)")
    print(f"peak tracemalloc: {traced.traced_peak / 2**20:.1f} MiB (case {traced.case}, {traced.kind})")
    if rss.rss_rise >= 0:
        print(f"peak RSS rise:    {rss.rss_rise / 2**20:.1f} MiB (case {rss.case}, {rss.kind})")
    else:
        print("peak RSS rise:    not measurable here (/proc/self/clear_refs refused)")
    over = [r for r in results if max(r.traced_peak, r.rss_rise) > bound]
    escapes = [r for r in results if any(o.startswith("ESCAPE") for o in r.outcomes.values())]
    executed = [r for r in results if r.executed]
    print(f"over the bound: {len(over)}; escapes: {len(escapes)}; executed payloads: {len(executed)}")
    for r in (escapes + over + executed)[:20]:
        bad = {k: v for k, v in r.outcomes.items() if v.startswith("ESCAPE")}
        replay = f"--seed {args.seed} --first {r.case} --cases 1"
        print(f"  case {r.case} ({r.kind}): {bad or 'memory/executed'}; replay: {replay}")
    return 1 if escapes or over or executed else 0


if __name__ == "__main__":
    sys.exit(main())
