"""500 seeded mutations of a sound archive through every archive reader (bench/fuzz_archives.py runs 10,000)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import archive_fuzz

CASES = 500


def _run(seed: int, work: Path) -> tuple[int, list[archive_fuzz.CaseResult]]:
    results = list(archive_fuzz.run(seed, CASES, work))
    return (work / "base.zip").stat().st_size, results


def test_archive_fuzz_every_reader_loads_or_raises_model_format_error(tmp_path: Path, seed: int) -> None:
    base_size, results = _run(seed, tmp_path)
    replay = f"replay: .venv/bin/python bench/fuzz_archives.py --seed {seed} --cases 1 --first <case>"

    escapes = [(r.case, r.kind, o) for r in results for o in r.outcomes.values() if o.startswith("ESCAPE")]
    assert escapes == [], f"non-ModelFormatError escapes (case, kind, error): {escapes[:10]}; {replay}"

    executed = [r.case for r in results if r.executed]
    assert executed == [], f"a planted pickle payload ran in cases {executed}; {replay}"

    bound = archive_fuzz.memory_bound(base_size)
    over = [(r.case, r.kind, r.traced_peak, r.rss_rise) for r in results if max(r.traced_peak, r.rss_rise) > bound]
    assert over == [], f"over the {bound}-byte memory bound (case, kind, traced, RSS rise): {over}; {replay}"

    # The run exercised what it claims: every mutation kind, both outcomes, and planted payloads.
    kinds = Counter(r.kind for r in results)
    assert set(kinds) == set(archive_fuzz.KINDS), f"kinds never drawn: {set(archive_fuzz.KINDS) - set(kinds)}"
    outcomes = Counter(o for r in results for o in r.outcomes.values())
    assert outcomes["ModelFormatError"] > CASES and outcomes["loaded"] > 0, outcomes
    assert kinds["pickle_member"] > 0
