"""Advice from measured phases: each rule fires on the run it describes, and a healthy run gets one info finding."""

from __future__ import annotations

import pytest

from deepspark.spark import advice
from deepspark.spark.advice import Finding, advise
from deepspark.spark.events import PhaseTimer
from deepspark.spark.stats import TrainingStats

T0 = 1_700_000_000.0
SETTINGS = {"num_workers": 2, "averaging_frequency": 5, "batch_size_per_worker": 32, "worker_prefetch": 2}


def _run(
    *,
    workers: int = 2,
    rounds: int = 4,
    batches: int = 5,
    fit: float = 0.1,
    fetch: float = 0.005,
    init_first: float = 0.05,
    init_later: float | None = None,
    overhead: float = 0.02,
    speeds: dict[int, float] | None = None,
    examples: dict[int, int] | None = None,
    retried: frozenset[tuple[int, int]] = frozenset(),
    settings: dict[str, object] | None = None,
) -> TrainingStats:
    """A ParameterAveraging-shaped run; the defaults describe a healthy one."""
    driver = PhaseTimer("driver", host="driver", pid=1)
    timers: list[PhaseTimer] = []
    t = T0
    for r in range(rounds):
        driver.record("broadcast", t, overhead, round=r)
        t += overhead
        map_start, ends = t, []
        for w in range(workers):
            attempt = int((r, w) in retried)
            timer = PhaseTimer("worker", w, attempt=attempt, host=f"exec-{w}", pid=100 + w)
            tw = t + 0.01
            timer.record("broadcast_get", tw, 0.005, round=r)
            tw += 0.005
            if r == 0 or init_later is not None:
                init = init_first if r == 0 else float(init_later or 0.0)
                timer.record("model_init", tw, init, round=r)
                tw += init
            for _ in range(batches):
                n = (examples or {}).get(w, 32)
                timer.record("data_fetch", tw, fetch, round=r, examples=n)
                tw += fetch
                seconds = fit * (speeds or {}).get(w, 1.0)
                timer.record("fit", tw, seconds, round=r, examples=n)
                tw += seconds
            ends.append(tw)
            timers.append(timer)
        t = max(ends) + 0.01
        driver.record("map", map_start, t - map_start, round=r)
        driver.record("aggregate", t, overhead, round=r)
        t += overhead
        driver.record("process_params", t, 0.005, round=r)
        t += 0.005
    stats = TrainingStats(driver.events, settings=dict(SETTINGS if settings is None else settings))
    for timer in timers:
        stats.add(timer.events)
    return stats


def _rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def test_advise_healthy_run_one_info_finding() -> None:
    findings = advise(_run())
    assert len(findings) == 1
    (ok,) = findings
    assert (ok.severity, ok.rule, ok.setting) == ("info", "ok", None)
    assert "%" in ok.detail and "fitting" in ok.detail


def test_advise_driver_overhead_dominates_raise_averaging_frequency() -> None:
    findings = advise(_run(overhead=0.4))
    (finding,) = [f for f in findings if f.rule == "driver_overhead"]
    assert (finding.severity, finding.setting) == ("warning", "averaging_frequency")
    assert "averaging_frequency (now 5)" in finding.detail and "batch_size_per_worker (now 32)" in finding.detail


def test_advise_one_barrier_stage_is_not_driver_overhead_per_round() -> None:
    """Collective averaging: one driver ``map`` spans the whole fit; the rounds inside it cost the driver nothing."""
    driver = PhaseTimer("driver", host="driver", pid=1)
    timers = [PhaseTimer("worker", w, host=f"exec-{w}", pid=100 + w) for w in range(2)]
    rounds, t = 40, T0 + 1.0
    for r in range(rounds):
        for timer in timers:
            timer.record("fit", t, 0.25, round=r, examples=320)
            timer.record("average", t + 0.25, 0.01, round=r)
        t += 0.26
    driver.record("broadcast", T0, 0.3, round=0)
    driver.record("map", T0 + 0.5, t - T0, round=rounds - 1)
    stats = TrainingStats(driver.events, settings=dict(SETTINGS))
    for timer in timers:
        stats.add(timer.events)
    assert "driver_overhead" not in _rules(advise(stats))


def test_advise_data_fetch_dominates_raise_worker_prefetch() -> None:
    (finding,) = [f for f in advise(_run(fetch=0.1)) if f.rule == "data_fetch"]
    assert (finding.severity, finding.setting) == ("warning", "worker_prefetch")
    assert 'approach="export"' in finding.detail and "worker_prefetch (now 2)" in finding.detail


def test_advise_slow_worker_straggler_repartition_balanced() -> None:
    (finding,) = [f for f in advise(_run(speeds={1: 2.0})) if f.rule == "straggler"]
    assert (finding.severity, finding.setting) == ("warning", "repartition")
    assert "worker 1" in finding.detail and 'repartition_strategy="balanced"' in finding.detail


def test_advise_uneven_examples_straggler_names_examples() -> None:
    (finding,) = [f for f in advise(_run(examples={0: 96, 1: 32})) if f.rule == "straggler"]
    assert "worker 0 gets 3.0x the examples" in finding.detail


def test_advise_skew_below_ratio_no_straggler() -> None:
    speed = advice.STRAGGLER_RATIO * 0.9
    assert "straggler" not in _rules(advise(_run(workers=3, speeds={2: speed})))


def test_advise_fewer_active_workers_than_num_workers_repartition() -> None:
    findings = advise(_run(settings={**SETTINGS, "num_workers": 3}))
    (finding,) = [f for f in findings if f.rule == "idle_workers"]
    assert (finding.severity, finding.setting) == ("warning", "repartition")
    assert "num_workers=3" in finding.detail and "4 of 4 rounds" in finding.detail


def test_advise_tiny_iterations_larger_batches() -> None:
    findings = advise(_run(fit=0.001, overhead=0.01, fetch=0.0001))
    (finding,) = [f for f in findings if f.rule == "tiny"]
    assert (finding.severity, finding.setting) == ("warning", "batch_size_per_worker")
    assert "ms to fit" in finding.detail


def test_advise_big_iterations_no_tiny_finding() -> None:
    assert "tiny" not in _rules(advise(_run(fit=advice.TINY_FIT_SECONDS * 2, overhead=0.05)))


def test_advise_model_init_every_round_worker_reuse_info() -> None:
    (finding,) = [f for f in advise(_run(init_later=0.2)) if f.rule == "model_init"]
    assert (finding.severity, finding.setting) == ("info", "spark.python.worker.reuse")


def test_advise_model_init_first_round_only_no_finding() -> None:
    assert "model_init" not in _rules(advise(_run(init_first=0.5)))


def test_advise_retried_tasks_warning_counts_and_says_exact() -> None:
    findings = advise(_run(retried=frozenset({(1, 0), (3, 1)})))
    (finding,) = [f for f in findings if f.rule == "retries"]
    assert finding.severity == "warning" and finding.title == "2 retried tasks"
    assert "exact" in finding.detail and "[1, 3]" in finding.detail


def test_advise_several_problems_warnings_before_infos() -> None:
    findings = advise(_run(fetch=0.1, init_later=0.4, retried=frozenset({(2, 1)})))
    assert {"data_fetch", "model_init", "retries"} <= _rules(findings)
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=lambda s: s != "warning")
    assert "ok" not in _rules(findings)


def test_advise_explicit_settings_override_stored() -> None:
    stats = _run(overhead=0.4, settings={})
    assert "(now" not in next(f for f in advise(stats) if f.rule == "driver_overhead").detail
    detail = next(f for f in advise(stats, {"averaging_frequency": 9}) if f.rule == "driver_overhead").detail
    assert "averaging_frequency (now 9)" in detail


def test_advise_no_events_info_finding() -> None:
    assert [(f.severity, f.rule) for f in advise(TrainingStats())] == [("info", "empty")]


def test_training_stats_advice_matches_advise() -> None:
    stats = _run(speeds={0: 3.0})
    assert stats.advice() == advise(stats)


@pytest.mark.parametrize(
    "name",
    [
        "DRIVER_OVERHEAD_MAX_RATIO",
        "DATA_FETCH_MAX_SHARE",
        "STRAGGLER_RATIO",
        "TINY_FIT_SECONDS",
        "TINY_OVERHEAD_RATIO",
        "MODEL_INIT_MAX_SHARE",
    ],
)
def test_advice_thresholds_positive_named_constants(name: str) -> None:
    assert getattr(advice, name) > 0


def _sharing_run(*, compute: float, exchange: float, sparsity: float, steps: int = 40) -> TrainingStats:
    """A GradientSharing-shaped run: per step compute, encode, exchange, decode on two workers."""
    stats = TrainingStats(settings={"encoding": "threshold", "batch_size_per_worker": 32, "staleness": 0})
    for w in range(2):
        timer = PhaseTimer("worker", w, host=f"exec-{w}", pid=100 + w)
        t = T0
        for s in range(steps):
            timer.record("compute", t, compute, round=s, examples=32)
            timer.record("encode", t + compute, 0.001, round=s, sparsity=sparsity, tau=1e-3)
            timer.record("exchange", t + compute + 0.001, exchange, round=s, bytes_sent=4000, bytes_received=4000)
            timer.record("decode", t + compute + 0.001 + exchange, 0.001, round=s)
            t += compute + exchange + 0.002
        stats.add(timer.drain())
    return stats


def test_advice_sharing_flags_communication_bound_steps() -> None:
    findings = advise(_sharing_run(compute=0.01, exchange=0.03, sparsity=1e-3))
    rules = [f.rule for f in findings]
    assert "exchange" in rules
    finding = findings[rules.index("exchange")]
    assert "staleness=1" in finding.detail and "4,000 bytes" in finding.detail


def test_advice_sharing_flags_bitmap_messages_and_is_quiet_when_healthy() -> None:
    assert "bitmaps" in [f.rule for f in advise(_sharing_run(compute=0.03, exchange=0.01, sparsity=0.2))]
    healthy = advise(_sharing_run(compute=0.03, exchange=0.01, sparsity=1e-3))
    assert [f.rule for f in healthy] == ["ok"]
    summary = _sharing_run(compute=0.03, exchange=0.01, sparsity=1e-3).summary()
    assert "4,000 bytes sent per step per worker" in summary and "sparsity mean 1.00e-03" in summary


def test_advice_threshold_stall_warns_naming_threshold_algorithm_and_is_quiet_when_updates_get_out() -> None:
    stalled = advise(_sharing_run(compute=0.03, exchange=0.01, sparsity=0.0))
    finding = next(f for f in stalled if f.rule == "stalled")
    assert finding.severity == "warning" and finding.setting == "threshold_algorithm"
    assert "AdaptiveThreshold" in finding.detail and "tau 0.001" in finding.detail
    healthy = advise(_sharing_run(compute=0.03, exchange=0.01, sparsity=advice.STALLED_MAX_SPARSITY))
    assert "stalled" not in [f.rule for f in healthy]
