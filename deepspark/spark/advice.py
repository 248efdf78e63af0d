"""Plain-language advice from measured training phases: "are you doing distributed training the right way?"."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from deepspark.spark.events import (
    PHASE_AGGREGATE,
    PHASE_BROADCAST,
    PHASE_COMPUTE,
    PHASE_DATA_FETCH,
    PHASE_ENCODE,
    PHASE_EXCHANGE,
    PHASE_FIT,
    PHASE_MAP,
    PHASE_MODEL_INIT,
    PHASE_PROCESS_PARAMS,
)
from deepspark.spark.stats import TrainingStats

# Driver overhead per round (broadcast + aggregate + process_params + Spark scheduling) over the
# time one worker fits per round: above this, workers mostly wait for the driver.
DRIVER_OVERHEAD_MAX_RATIO = 0.5
# Share of worker time spent fetching data above which the input pipeline is the bottleneck.
DATA_FETCH_MAX_SHARE = 0.3
# Slowest worker's fit time (or largest example count) over the median of the others: a straggler.
STRAGGLER_RATIO = 1.5
# Mean seconds per minibatch below which one iteration is too small to distribute ...
TINY_FIT_SECONDS = 0.005
# ... when the per-round overhead is at least this fraction of a worker's fit time per round.
TINY_OVERHEAD_RATIO = 0.2
# Share of worker time in model_init above which per-round model setup is worth avoiding.
MODEL_INIT_MAX_SHARE = 0.15
# Fraction of (round, worker) pairs with a model_init for it to count as "every round".
MODEL_INIT_EVERY_ROUND = 0.8

# Gradient sharing: exchange time over compute time above which the workers mostly wait for the network.
EXCHANGE_MAX_RATIO = 1.0
# Gradient sharing: share of threshold-encoded steps that went out as (n / 16) bitmaps above which tau
# is too low for the updates (the messages are barely compressed).
BITMAP_MAX_SHARE = 0.5
# Gradient sharing: mean fraction of the elements a threshold-encoded step sends below which (almost) none of
# the update reaches the model: tau sits far above the per-step update and training cannot converge.
STALLED_MAX_SPARSITY = 1e-5

_OVERHEAD_PHASES = (PHASE_BROADCAST, PHASE_AGGREGATE, PHASE_PROCESS_PARAMS)


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of advice.

    Attributes:
        severity: ``"warning"`` when training is slower or less balanced than it needs to be, else ``"info"``.
        title: One line saying what was seen.
        detail: The numbers behind it and what to do, in plain language.
        setting: The setting (master field or Spark conf key) to change, if one does.
        rule: Short id of the rule that produced it, e.g. ``"straggler"``.

    Example:
        >>> Finding("warning", "Workers wait for the driver", "...", "averaging_frequency").setting
        'averaging_frequency'
    """

    severity: Literal["info", "warning"]
    title: str
    detail: str
    setting: str | None = None
    rule: str = ""


def _setting(settings: dict[str, Any], name: str) -> str:
    return f" (now {settings[name]!r})" if name in settings else ""


def _per_round_overhead(stats: TrainingStats) -> float:
    """Mean seconds per round the driver adds around the workers' own work."""
    rounds = stats.rounds()
    if not rounds:
        return 0.0
    total, maps, busy = 0.0, dict[int, float](), dict[tuple[int, int], float]()
    for e in stats.events():
        if e.side == "driver" and e.phase in _OVERHEAD_PHASES:
            total += e.duration
        elif e.side == "driver" and e.phase == PHASE_MAP:
            maps[e.round] = maps.get(e.round, 0.0) + e.duration
        elif e.side == "worker":
            busy[e.round, e.worker] = busy.get((e.round, e.worker), 0.0) + e.duration
    slowest: dict[int, float] = {}
    for (r, _), seconds in busy.items():
        slowest[r] = max(slowest.get(r, 0.0), seconds)
    if len(maps) >= len(rounds) / 2:  # one Spark job per round; a barrier stage's one map spans every round
        total += sum(max(0.0, seconds - slowest.get(r, 0.0)) for r, seconds in maps.items())
    return total / len(rounds)


def _fit_per_worker_round(stats: TrainingStats) -> float:
    """Mean seconds one worker fits per round."""
    pairs = {(e.round, e.worker) for e in stats.events(side="worker")}
    fit = sum(stats.worker_totals(PHASE_FIT).values())
    return fit / len(pairs) if pairs else 0.0


def _rule_driver_overhead(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    overhead, fit = _per_round_overhead(stats), _fit_per_worker_round(stats)
    if fit <= 0 or overhead / fit <= DRIVER_OVERHEAD_MAX_RATIO:
        return []
    detail = (
        f"Each round the driver spends {overhead:.3f} s broadcasting, scheduling and aggregating while a worker "
        f"fits for {fit:.3f} s: workers are idle {overhead / (overhead + fit):.0%} of the time. Give every round "
        f"more work: raise averaging_frequency{_setting(settings, 'averaging_frequency')} or "
        f"batch_size_per_worker{_setting(settings, 'batch_size_per_worker')}."
    )
    return [Finding("warning", "Workers wait for the driver", detail, "averaging_frequency", "driver_overhead")]


def _rule_data_fetch(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    busy = sum(stats.worker_totals().values())
    fetch = sum(stats.worker_totals(PHASE_DATA_FETCH).values())
    if busy <= 0 or fetch / busy <= DATA_FETCH_MAX_SHARE:
        return []
    detail = (
        f"Workers spend {fetch / busy:.0%} of their time fetching data ({fetch:.2f} s in all). Raise "
        f"worker_prefetch{_setting(settings, 'worker_prefetch')} to overlap loading with fitting, or use "
        'approach="export" to write minibatches once and read them back directly.'
    )
    return [Finding("warning", "Data loading is the bottleneck", detail, "worker_prefetch", "data_fetch")]


def _skew(values: dict[int, float]) -> tuple[int, float] | None:
    """The worker with the largest value and its ratio to the median of the others, above ``STRAGGLER_RATIO``."""
    if len(values) < 2:
        return None
    worst = max(values, key=lambda w: values[w])
    median = statistics.median(v for w, v in values.items() if w != worst)
    ratio = values[worst] / median if median > 0 else 0.0
    return (worst, ratio) if ratio > STRAGGLER_RATIO else None


def _rule_straggler(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    fit_skew = _skew(stats.worker_totals(PHASE_FIT))
    examples = {w: n for w, n in stats.worker_detail_totals("examples").items() if n > 0}
    example_skew = _skew(examples) if len(examples) == len(stats.workers()) else None
    if fit_skew is None and example_skew is None:
        return []
    parts = []
    if fit_skew is not None:
        parts.append(f"worker {fit_skew[0]} fits {fit_skew[1]:.1f}x as long as the others")
    if example_skew is not None:
        parts.append(f"worker {example_skew[0]} gets {example_skew[1]:.1f}x the examples of the others")
    detail = (
        f"Work is uneven: {'; '.join(parts)}. Every round waits for the slowest worker. Set "
        f'repartition="always"{_setting(settings, "repartition")} and repartition_strategy="balanced"'
        f"{_setting(settings, 'repartition_strategy')} so each worker gets the same number of examples; if the "
        "examples are already even, look at that worker's executor (host, CPU, other jobs)."
    )
    return [Finding("warning", "A straggler slows every round", detail, "repartition", "straggler")]


def _rule_idle_workers(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    wanted = settings.get("num_workers", stats.num_workers_requested)
    if not isinstance(wanted, int) or wanted <= 0:
        return []
    fitting: dict[int, set[int]] = {e.round: set() for e in stats.events(stats.work_phase, "worker")}
    for e in stats.events(stats.work_phase, "worker"):
        fitting[e.round].add(e.worker)
    active = [len(workers) for workers in fitting.values()]
    short = [n for n in active if n < wanted]
    if not short:
        return []
    detail = (
        f"{len(short)} of {len(active)} rounds ran with fewer active workers than num_workers={wanted} "
        f"(as few as {min(short)}): the data has fewer non-empty partitions than workers. Set "
        f'repartition="always"{_setting(settings, "repartition")} so every worker gets a partition.'
    )
    return [Finding("warning", "Some workers had no data", detail, "repartition", "idle_workers")]


def _rule_tiny_iterations(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    fits = stats.events(PHASE_FIT, "worker")
    if not fits:
        return []
    mean = sum(e.duration for e in fits) / len(fits)
    overhead, per_round = _per_round_overhead(stats), _fit_per_worker_round(stats)
    if mean >= TINY_FIT_SECONDS or per_round <= 0 or overhead / per_round < TINY_OVERHEAD_RATIO:
        return []
    detail = (
        f"A minibatch takes {mean * 1e3:.2f} ms to fit, while each round costs {overhead:.3f} s of overhead. "
        "Iterations this small will not get faster with more workers: raise "
        f"batch_size_per_worker{_setting(settings, 'batch_size_per_worker')}, train a larger model, or "
        "train on one machine."
    )
    return [Finding("warning", "Iterations are too small to distribute", detail, "batch_size_per_worker", "tiny")]


def _rule_model_init(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    inits = stats.events(PHASE_MODEL_INIT, "worker")
    pairs = {(e.round, e.worker) for e in stats.events(side="worker")}
    busy = sum(stats.worker_totals().values())
    if len(stats.rounds()) < 2 or not pairs or busy <= 0:
        return []
    every_round = len({(e.round, e.worker) for e in inits}) / len(pairs) >= MODEL_INIT_EVERY_ROUND
    share = sum(e.duration for e in inits) / busy
    if not every_round or share <= MODEL_INIT_MAX_SHARE:
        return []
    detail = (
        f"Workers build the model again every round, {share:.0%} of their time. Python workers that live "
        "across tasks can keep it: make sure spark.python.worker.reuse is true (the default) and that "
        "executors are not restarted between rounds."
    )
    return [Finding("info", "Model setup repeats every round", detail, "spark.python.worker.reuse", "model_init")]


def _rule_retries(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    retried = stats.retried_tasks()
    if not retried:
        return []
    rounds = sorted({t.round for t in retried})
    detail = (
        f"Spark re-ran {len(retried)} task{'s' if len(retried) != 1 else ''} (rounds {rounds}). The results are "
        "still exact: each task is a pure function of the broadcast parameters, its partition and its seed. "
        "Check the executor logs if it keeps happening (lost executors, out of memory)."
    )
    return [
        Finding("warning", f"{len(retried)} retried task{'s' if len(retried) != 1 else ''}", detail, None, "retries")
    ]


def _rule_exchange(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    compute = sum(stats.worker_totals(PHASE_COMPUTE).values())
    exchange = sum(stats.worker_totals(PHASE_EXCHANGE).values())
    if compute <= 0 or exchange / compute <= EXCHANGE_MAX_RATIO:
        return []
    steps = len(stats.events(phase=PHASE_EXCHANGE))
    sent = sum(float(e.detail.get("bytes_sent", 0)) for e in stats.events(phase=PHASE_EXCHANGE)) / max(1, steps)
    todo = "overlap it with compute: staleness=1" + _setting(settings, "staleness")
    if settings.get("encoding") == "dense":
        todo = "send less: encoding='threshold', or " + todo
    detail = (
        f"Workers spend {exchange:.2f} s exchanging updates and {compute:.2f} s computing them "
        f"({exchange / compute:.1f}x; {sent:,.0f} bytes sent per step per worker). Give each step more compute "
        f"(raise batch_size_per_worker{_setting(settings, 'batch_size_per_worker')}) or {todo}."
    )
    return [Finding("warning", "Communication dominates the steps", detail, "batch_size_per_worker", "exchange")]


def _rule_bitmaps(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    encode = stats.events(phase=PHASE_ENCODE)
    if not encode:
        return []
    dense_ish = sum(1 for e in encode if float(e.detail.get("sparsity", 0.0)) * 16 > 1.0)
    if dense_ish / len(encode) <= BITMAP_MAX_SHARE:
        return []
    detail = (
        f"{dense_ish} of {len(encode)} encoded steps sent more than 1/16 of the elements, so they went out as "
        "2-bit bitmaps (16x smaller than dense, far from the 100x+ that sparse messages give). The threshold is "
        "low for these updates: start it higher (threshold_algorithm.initial) or let it adapt for longer."
    )
    return [Finding("info", "Threshold messages are barely compressed", detail, "threshold_algorithm", "bitmaps")]


def threshold_stall(sparsity: float, tau: float, settings: dict[str, Any]) -> Finding | None:
    """The warning for threshold encoding that sends (almost) nothing, or None when enough goes out.

    Shared by the advice rule and the driver, which logs it after the first epoch that stalls.

    Example:
        >>> threshold_stall(0.0, 0.5, {}).setting
        'threshold_algorithm'
    """
    if sparsity >= STALLED_MAX_SPARSITY:
        return None
    detail = (
        f"Threshold-encoded steps sent {sparsity:.2g} of the elements on average, at tau {tau:.3g}: the "
        "per-step updates rarely add up to tau, so the model barely moves and training cannot converge. Lower "
        f"the threshold: threshold_algorithm{_setting(settings, 'threshold_algorithm')} -> AdaptiveThreshold() "
        "(the default, it follows the update size), or a FixedThreshold of a few per-step updates (about 5 "
        "learning rates for Adam)."
    )
    return Finding("warning", "Threshold encoding sends almost nothing", detail, "threshold_algorithm", "stalled")


def _rule_threshold_stalled(stats: TrainingStats, settings: dict[str, Any]) -> list[Finding]:
    encode = stats.events(phase=PHASE_ENCODE)
    if not encode:
        return []
    sparsity = statistics.fmean(float(e.detail.get("sparsity", 0.0)) for e in encode)
    finding = threshold_stall(sparsity, float(encode[-1].detail.get("tau", 0.0)), settings)
    return [] if finding is None else [finding]


RULES: tuple[Callable[[TrainingStats, dict[str, Any]], list[Finding]], ...] = (
    _rule_driver_overhead,
    _rule_data_fetch,
    _rule_straggler,
    _rule_idle_workers,
    _rule_tiny_iterations,
    _rule_model_init,
    _rule_retries,
    _rule_exchange,
    _rule_bitmaps,
    _rule_threshold_stalled,
)


def advise(stats: TrainingStats, settings: dict[str, Any] | None = None) -> list[Finding]:
    """Check measured phases against known pitfalls and say, in plain language, what to change.

    Args:
        stats: The training run's phase statistics.
        settings: The training master's settings (``num_workers``, ``averaging_frequency`` ...) quoted in
            the advice; ``None`` uses ``stats.settings``.

    Returns:
        Findings, warnings first; exactly one ``info`` finding saying so when nothing needs changing.

    Example:
        >>> for finding in advise(spark_net.training_stats()):  # doctest: +SKIP
        ...     print(finding.severity, finding.title, "->", finding.setting)
    """
    settings = dict(stats.settings if settings is None else settings)
    if not stats.events(side="worker"):
        return [Finding("info", "No worker phases recorded", "There is nothing to judge yet.", None, "empty")]
    findings = [finding for rule in RULES for finding in rule(stats, settings)]
    if not findings:
        busy = sum(stats.worker_totals().values())
        main = PHASE_FIT if stats.events(phase=PHASE_FIT) else PHASE_COMPUTE
        fit = sum(stats.worker_totals(main).values())
        share = stats.phase_totals().get(main)
        detail = (
            f"Workers spend {fit / busy if busy > 0 else 0.0:.0%} of their busy time fitting"
            f" and fit for {share.share if share else 0.0:.0%} of the run's worker time; no setting needs changing."
        )
        findings.append(Finding("info", "Training is well balanced", detail, None, "ok"))
    return sorted(findings, key=lambda f: f.severity != "warning")


__all__ = [
    "DATA_FETCH_MAX_SHARE",
    "BITMAP_MAX_SHARE",
    "DRIVER_OVERHEAD_MAX_RATIO",
    "EXCHANGE_MAX_RATIO",
    "MODEL_INIT_EVERY_ROUND",
    "MODEL_INIT_MAX_SHARE",
    "RULES",
    "STALLED_MAX_SPARSITY",
    "STRAGGLER_RATIO",
    "TINY_FIT_SECONDS",
    "TINY_OVERHEAD_RATIO",
    "Finding",
    "advise",
    "threshold_stall",
]
