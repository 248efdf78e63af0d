"""Executor SIGKILL mid-fit, 10 runs per master, on a real Spark standalone cluster (issue 13, "faults and scale").

A master and two workers (one single-core executor each) start as separate processes on 127.0.0.1 (the test
fixture's ``tests/cluster/standalone.py``); executors run this venv packed and shipped with ``spark.archives``
and deepspark shipped as a zip, as the cluster tests do. Per master (``ParameterAveraging``, collective transport,
and ``GradientSharing``, threshold encoding): one fault-free fit, then ``--runs`` fits in each of which the
executor JVM that computes the fit's stage is SIGKILLed at a different moment (``delay`` after the stage
starts, spread from 5 % to 90 % of the fault-free fit's time from its stage's first running task to its end,
measured after a warm-up fit;
the victim alternates between the two executors). Before
each run the cluster is made whole again (the replacement executor registered).

Recorded per run: whether the fit completed, held-out accuracy against the fault-free fit's, the fit time,
the longest wait (the longest gap between two progress reports the driver saw: fit start, each epoch, fit end;
a fault's gap holds the detection, the replacement executor, the relaunch and the lost work) and the stage
retries the stats hold. The pass line: completed, accuracy within 1 point, no wait over 60 s.

    nice -n 10 .venv/bin/python bench/fault_runs.py            # ~20-25 min on 2 cores

Data: the MNIST test set from ``--mnist`` (first 6,000 to train, the rest to test), an MLP 784-256-128-10,
Adam 1e-3, 3 epochs, 2 workers x batch 32. Writes the markdown table to stdout and to
``bench/results/fault_runs.md`` (and the raw runs to ``fault_runs.json``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "cluster"))  # the cluster fixture's helpers, usable without pytest

from common import mnist_arg  # noqa: E402
from faults import ExecutorKiller  # noqa: E402
from packed_env import packed_venv, zipped_package  # noqa: E402
from standalone import StandaloneCluster, wait_for_executors  # noqa: E402

import deepspark  # noqa: E402
from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output  # noqa: E402
from deepspark.data import load_mnist  # noqa: E402
from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, TrainingMaster  # noqa: E402
from deepspark.spark._averaging import JOB_GROUP as AVERAGING_GROUP  # noqa: E402
from deepspark.spark._sharing import JOB_GROUP as SHARING_GROUP  # noqa: E402

WORKERS = 2
EPOCHS = 3
MAX_WAIT_S = 60.0
MAX_ACCURACY_DROP = 0.01
ENV_ALIAS = "environment"
CLUSTER_CONF = {  # as tests/cluster/conftest.py
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    "spark.executor.cores": "1",
    "spark.executor.memory": "1g",
    "spark.task.maxFailures": "4",
    "spark.sql.shuffle.partitions": "2",
    "spark.locality.wait": "0s",
}
MASTERS: dict[str, tuple[TrainingMaster, str]] = {
    "ParameterAveraging": (
        ParameterAveraging(num_workers=WORKERS, batch_size_per_worker=32, averaging_frequency=10, seed=1,
                           collect_training_stats=True, collective_timeout=20.0),
        AVERAGING_GROUP,
    ),
    "GradientSharing": (
        GradientSharing(num_workers=WORKERS, batch_size_per_worker=32, seed=1, collect_training_stats=True,
                        collective_timeout=20.0),
        SHARING_GROUP,
    ),
}


def _config() -> NetworkConfig:
    return NetworkConfig(
        seed=1,
        updater=Adam(learning_rate=1e-3),
        input_type=InputType.feed_forward(784),
        layers=(Dense(n_out=256, activation="relu"), Dense(n_out=128, activation="relu"), Output(n_out=10)),
    )


@dataclass
class Run:
    """One fit: fault-free (``delay_s`` None) or with an executor killed ``delay_s`` after its stage started."""

    master: str
    run: int
    delay_s: float | None
    completed: bool
    killed: int
    accuracy: float | None
    baseline: float | None
    fit_s: float
    longest_wait_s: float
    kill_to_progress_s: float | None
    retries: int
    error: str = ""

    @property
    def passed(self) -> bool:
        return (
            self.completed
            and self.killed > 0
            and self.accuracy is not None
            and self.baseline is not None
            and abs(self.accuracy - self.baseline) <= MAX_ACCURACY_DROP
            and self.longest_wait_s <= MAX_WAIT_S
        )


def _fit(spark: Any, df: Any, master: TrainingMaster, group: str, delay: float | None, victim: int) -> dict[str, Any]:
    """One fit with progress times; with ``delay``, an executor killed that long after the stage started."""
    progress = [time.monotonic()]
    spark_net = SparkNetwork(spark, _config(), master)
    out: dict[str, Any] = {"completed": False, "kills": [], "error": "", "net": None, "retries": 0}
    if delay is None:  # fault-free: only note when the stage first runs a task (the window later kills spread over)
        killer = ExecutorKiller(spark, group, fault=lambda pid: None)
    else:
        killer = ExecutorKiller(spark, group, delay_s=delay, victim=victim)
    try:
        with killer:
            out["net"] = spark_net.fit(df, epochs=EPOCHS, on_round=lambda info: progress.append(time.monotonic()))
        out["completed"] = True
    except Exception as e:  # recorded as a failed run, the next run goes on
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    progress.append(time.monotonic())
    out["seconds"] = progress[-1] - progress[0]
    out["longest_wait"] = max(b - a for a, b in itertools.pairwise(progress))
    if delay is None:
        out["stage_s"] = progress[-1] - killer.kills[0].at if killer.kills else out["seconds"]
    elif killer.kills:
        at = killer.kills[0].at
        out["kills"] = killer.kills
        after = [t for t in progress[1:] if t > at]
        out["kill_to_progress"] = after[0] - at if after else None
    if out["completed"]:
        out["retries"] = len(spark_net.training_stats().events(phase="retry"))
    return out


def _table(runs: list[Run]) -> str:
    head = (
        "| master | run | kill at (s after stage start) | completed | executors killed | accuracy | fault-free "
        "| diff (points) | fit s | longest wait s | kill to next epoch s | stage retries | pass |"
    )
    lines = [head, "|" + " --- |" * 13]
    for r in runs:
        acc = "" if r.accuracy is None else f"{r.accuracy:.4f}"
        base = "" if r.baseline is None else f"{r.baseline:.4f}"
        diff = "" if r.accuracy is None or r.baseline is None else f"{100 * (r.accuracy - r.baseline):+.2f}"
        lines.append(
            f"| {r.master} | {'fault-free' if r.delay_s is None else r.run} | "
            f"{'' if r.delay_s is None else f'{r.delay_s:.1f}'} | {'yes' if r.completed else 'no: ' + r.error} | "
            f"{r.killed} | {acc} | {base} | {diff} | {r.fit_s:.1f} | {r.longest_wait_s:.1f} | "
            f"{'' if r.kill_to_progress_s is None else f'{r.kill_to_progress_s:.1f}'} | {r.retries} | "
            f"{'' if r.delay_s is None else ('yes' if r.passed else 'NO')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mnist_arg(parser)
    parser.add_argument("--runs", type=int, default=10, help="faulty fits per master")
    parser.add_argument("--train", type=int, default=6000, help="training examples (the rest of t10k tests)")
    parser.add_argument("--masters", nargs="+", default=list(MASTERS), choices=list(MASTERS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fault_runs.md")
    args = parser.parse_args(argv)

    import pandas as pd

    from deepspark.spark import cluster_spark

    x, y = load_mnist(args.mnist, kind="t10k", flatten=True, normalize=True)
    x_train, y_train, x_test, y_test = x[: args.train], y[: args.train], x[args.train :], y[args.train :]
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    runs: list[Run] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deepspark-faults-") as tmp:
        root = Path(tmp)
        archive = packed_venv()
        package = zipped_package(Path(deepspark.__file__).parent, root / "deepspark.zip")
        with StandaloneCluster(root / "cluster", workers=WORKERS, cores=1, memory="2g") as cluster:
            spark = cluster_spark(
                cluster.master_url,
                app_name="deepspark-fault-runs",
                conf={**CLUSTER_CONF, "spark.submit.pyFiles": str(package)},
                archives=[f"{archive}#{ENV_ALIAS}"],
                executor_python=f"./{ENV_ALIAS}/bin/python",
            )
            try:
                wait_for_executors(spark, WORKERS, on_timeout=cluster.describe)
                pdf = pd.DataFrame({"features": list(x_train.astype(np.float64)), "label": y_train})
                df = spark.createDataFrame(pdf).repartition(WORKERS).persist()
                df.count()
                for name in args.masters:
                    master, group = MASTERS[name]
                    cluster.heal(spark)
                    _fit(spark, df, master, group, None, 0)  # warm-up: cold Python workers would stretch the window
                    clean = _fit(spark, df, master, group, None, 0)
                    baseline = clean["net"].evaluate(x_test, y_test).accuracy() if clean["completed"] else None
                    runs.append(Run(name, 0, None, clean["completed"], 0, baseline, baseline, clean["seconds"],
                                    clean["longest_wait"], None, clean["retries"], clean["error"]))
                    print(_table(runs[-1:]).splitlines()[-1], flush=True)
                    stage_s = clean["stage_s"]  # the fault-free fit's time from its stage's first task to its end
                    for i in range(args.runs):
                        cluster.heal(spark)
                        delay = stage_s * (0.05 + 0.85 * i / max(args.runs - 1, 1))  # early to late in the fit
                        out = _fit(spark, df, master, group, delay, victim=i % WORKERS)
                        accuracy = out["net"].evaluate(x_test, y_test).accuracy() if out["completed"] else None
                        runs.append(Run(name, i + 1, delay, out["completed"], len(out["kills"]), accuracy, baseline,
                                        out["seconds"], out["longest_wait"], out.get("kill_to_progress"),
                                        out["retries"], out["error"]))
                        print(_table(runs[-1:]).splitlines()[-1], flush=True)
            finally:
                spark.stop()
    faulty = [r for r in runs if r.delay_s is not None]
    summary = (
        f"{sum(r.passed for r in faulty)}/{len(faulty)} faulty runs passed (completed, accuracy within "
        f"{100 * MAX_ACCURACY_DROP:.0f} point of the fault-free fit, no wait over {MAX_WAIT_S:.0f} s); "
        f"{sum(r.killed > 0 for r in faulty)}/{len(faulty)} had an executor killed; "
        f"total {time.monotonic() - started:.0f} s"
    )
    report = (
        "# Executor SIGKILL mid-fit on a standalone cluster\n\n"
        f"`nice -n 10 .venv/bin/python bench/fault_runs.py` ({time.strftime('%Y-%m-%d %H:%M')}; "
        f"{len(x_train)} MNIST examples, MLP 784-256-128-10, {EPOCHS} epochs, {WORKERS} workers x batch 32)\n\n"
        f"{_table(runs)}\n\n{summary}\n"
    )
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 0 if all(r.passed for r in faulty) else 1


if __name__ == "__main__":
    sys.exit(main())
