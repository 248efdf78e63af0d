"""GradientSharing on real barrier stages and real gloo process groups (local[2])."""

from __future__ import annotations

import hashlib
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.errors import DistributedTrainingError
from deepspark.nn import Network
from deepspark.spark import FixedThreshold, GradientSharing, SparkNetwork, TargetSparsity
from deepspark.spark._rendezvous import DriverStore

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _conf(updater: Any = None, dtype: str = "float32") -> NetworkConfig:
    return NetworkConfig(
        seed=3,
        dtype=dtype,
        updater=updater or Adam(learning_rate=1e-2),
        input_type=InputType.feed_forward(8),
        layers=(Dense(n_out=16, activation="tanh"), Output(n_out=3)),
    )


def _problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _frame(spark: SparkSession, x: np.ndarray, y: np.ndarray, partitions: int = 2) -> DataFrame:
    import pandas as pd

    pdf = pd.DataFrame({"features": list(x.astype(np.float64)), "label": y})
    return spark.createDataFrame(pdf).repartition(partitions)


def _stage(
    host: str,
    port: int,
    prefix: str,
    master: GradientSharing,
    conf_json: str,
    batches: list[tuple[np.ndarray, np.ndarray]],
    finish: bool,
    index: int,
    rows: Any,
) -> Any:
    """One rank of a hand-driven stage: every rank trains on its own slice of each shared minibatch."""
    import torch

    from deepspark.config._spec import Spec
    from deepspark.spark import _rendezvous
    from deepspark.spark._sharing_trainer import Trainer
    from deepspark.spark.events import PhaseTimer

    for _ in rows:
        pass
    net = Network(Spec.from_json(conf_json))  # type: ignore[arg-type]
    _rendezvous.join(host, port, prefix, index, 2, "gloo", 20.0)
    try:
        trainer = Trainer(net, master, 2, {}, PhaseTimer("worker", index, enabled=False))
        for x, y in batches:
            half = len(x) // 2
            xs, ys = x[index * half : (index + 1) * half], y[index * half : (index + 1) * half]
            trainer.step((torch.from_numpy(xs).to(net.dtype), torch.from_numpy(ys), None, None), len(xs))
        if finish:
            trainer.finish()
    finally:
        _rendezvous.leave()
    params = net.params()
    yield index, hashlib.sha256(params.tobytes()).hexdigest(), params


def _run_stage(spark: SparkSession, master: GradientSharing, conf: NetworkConfig, batches: Any, finish: bool) -> Any:
    store = DriverStore("127.0.0.1", 20.0)
    try:
        fn = partial(_stage, store.host, store.port, f"t{time.time_ns()}/", master, conf.to_json(), batches, finish)
        return sorted(spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitionsWithIndex(fn).collect())
    finally:
        store.close()


def _batches(steps: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = _problem(steps * size, seed=11)
    return [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(steps)]


@pytest.mark.parametrize(
    "master",
    [
        GradientSharing(num_workers=2),
        GradientSharing(num_workers=2, staleness=1),
        GradientSharing(num_workers=2, threshold_algorithm=TargetSparsity(target=0.05)),
        GradientSharing(num_workers=2, threshold_algorithm=FixedThreshold(threshold=1e-3), staleness=1),
        GradientSharing(num_workers=2, encoding="dense", staleness=1),
    ],
    ids=["adaptive", "adaptive-stale", "target", "fixed-stale", "dense-stale"],
)
def test_replicas_bit_identical_after_steps(spark: SparkSession, master: GradientSharing) -> None:
    conf = _conf()
    out = _run_stage(spark, master, conf, _batches(25, 32), finish=False)
    (r0, h0, p0), (r1, h1, _) = out
    assert (r0, r1) == (0, 1)
    assert h0 == h1, "replicas differ after 25 steps"
    assert not np.array_equal(p0, Network(conf).params()), "the parameters did not move"


def test_dense_mode_equals_single_process_large_batch_sgd(spark: SparkSession) -> None:
    conf = _conf(Sgd(learning_rate=0.1), dtype="float64")
    batches = _batches(6, 64)
    out = _run_stage(spark, GradientSharing(num_workers=2, encoding="dense"), conf, batches, finish=True)
    reference = Network(conf)
    import torch

    for x, y in batches:
        reference.fit_batch((torch.from_numpy(x).double(), torch.from_numpy(y), None, None))
    assert out[0][1] == out[1][1]
    np.testing.assert_allclose(out[0][2], reference.params(), rtol=0, atol=1e-12)
    assert not np.allclose(reference.params(), Network(conf).params())


def test_fit_threshold_learns_and_reports_bytes_sparsity_and_tau(spark: SparkSession, tmp_path: Any) -> None:
    x, y = _problem(1200)
    df = _frame(spark, x, y)
    master = GradientSharing(num_workers=2, batch_size_per_worker=32, collect_training_stats=True, seed=1)
    spark_net = SparkNetwork(spark, _conf(), master)
    before = spark_net.network.evaluate(x, y).accuracy()
    rounds: list[Any] = []
    net = spark_net.fit(df, epochs=3, on_round=rounds.append)
    acc = net.evaluate(x, y).accuracy()
    assert acc > before + 0.3, (before, acc)  # 57 steps: threshold encoding starts slow (tau adapts first)
    assert net.epoch == 3 and net.iteration == 3 * 19  # ceil(600 / 32) steps per epoch
    assert [r.epoch for r in rounds] == [0, 1, 2]
    stats = spark_net.training_stats()
    encode = stats.events(phase="encode")
    exchange = stats.events(phase="exchange")
    assert len(encode) == len(exchange) == 2 * 3 * 19
    assert all(0.0 <= float(e.detail["sparsity"]) <= 1.0 and float(e.detail["tau"]) > 0 for e in encode)
    assert all(int(e.detail["bytes_sent"]) > 0 for e in exchange)
    summary = stats.summary()
    assert "exchange" in summary and "encode" in summary
    html = stats.export_html(tmp_path / "timeline.html").read_text()
    assert "exchange" in html


def test_listeners_get_one_report_per_epoch_with_every_workers_reading(spark: SparkSession) -> None:
    from deepspark.spark.listeners import SparkTrainingListener

    class Capture(SparkTrainingListener):
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def on_spark_fit_start(self, net: Any, info: dict[str, Any]) -> None:
            self.calls.append(("start", info["master"]["type"], info["num_workers"]))

        def on_round_done(self, net: Any, report: Any) -> None:
            self.calls.append(("round", report.epoch, report.iteration, report.examples, report.workers))

        def on_spark_fit_end(self, net: Any, stats: Any) -> None:
            self.calls.append(("end",))

    x, y = _problem(200)
    capture = Capture()
    master = GradientSharing(num_workers=2, batch_size_per_worker=20)
    SparkNetwork(spark, _conf(), master, listeners=[capture]).fit(_frame(spark, x, y), epochs=2)
    assert capture.calls[0] == ("start", "gradient_sharing", 2)
    rounds = [c for c in capture.calls if c[0] == "round"]
    assert [(r[1], r[2], r[3]) for r in rounds] == [(1, 5, 200), (2, 10, 200)]
    for r in rounds:
        assert sorted(w["worker"] for w in r[4]) == [0, 1]
        assert all(w["examples"] == 100 and w["minibatches"] == 5 and w["rss_bytes"] > 0 for w in r[4])
    assert capture.calls[-1] == ("end",)


def test_epochs_per_stage_trains_several_epochs_in_one_stage(spark: SparkSession) -> None:
    x, y = _problem(200)
    rounds: list[Any] = []
    master = GradientSharing(num_workers=2, batch_size_per_worker=20, epochs_per_stage=2, collect_training_stats=True)
    spark_net = SparkNetwork(spark, _conf(), master)
    net = spark_net.fit(_frame(spark, x, y), epochs=3, on_round=rounds.append)
    assert (net.epoch, net.iteration) == (3, 15)  # 5 steps per epoch
    assert [r.epoch for r in rounds] == [0, 1, 2]  # every epoch reaches the driver, inside a stage too
    assert len(spark_net.training_stats().events(phase="rendezvous")) == 2 * 2  # stages of 2 and 1 epochs, 2 ranks


def test_whole_fit_runs_in_one_stage_and_every_epoch_reaches_the_driver(spark: SparkSession, tmp_path: Any) -> None:
    x, y = _problem(200)
    rounds: list[Any] = []
    master = GradientSharing(num_workers=2, batch_size_per_worker=20, encoding="dense", collect_training_stats=True)
    spark_net = SparkNetwork(spark, _conf(), master)
    net = spark_net.fit(_frame(spark, x, y), epochs=3, on_round=rounds.append, checkpoint_dir=tmp_path / "ckpt")
    assert (net.epoch, net.iteration) == (3, 15)
    assert [r.epoch for r in rounds] == [0, 1, 2]
    stats = spark_net.training_stats()
    assert len(stats.events(phase="rendezvous")) == 2  # one stage: each rank joined once
    assert len(stats.events(phase="gc")) == 2 * 3  # garbage-collector seconds, per rank and epoch
    checkpoints = sorted((tmp_path / "ckpt").glob("*.zip"))
    assert [c.name for c in checkpoints] == [f"checkpoint_epoch000{e}.zip" for e in (1, 2, 3)]
    middle = Network.load(checkpoints[1])
    assert (middle.epoch, middle.iteration) == (2, 10)
    assert not np.array_equal(middle.params(), net.params())  # each checkpoint holds its own epoch's state


def test_fit_dense_and_threshold_agree_on_a_separable_problem(spark: SparkSession) -> None:
    x, y = _problem(1000, seed=5)
    df = _frame(spark, x, y).persist()
    chance = Network(_conf()).evaluate(x, y).accuracy()
    accs = {}
    for encoding in ("dense", "threshold"):
        master = GradientSharing(num_workers=2, batch_size_per_worker=25, encoding=encoding)  # type: ignore[arg-type]
        accs[encoding] = SparkNetwork(spark, _conf(), master).fit(df, epochs=3).evaluate(x, y).accuracy()
    df.unpersist()
    assert min(accs.values()) > chance + 0.25, (chance, accs)
    assert abs(accs["dense"] - accs["threshold"]) < 0.1, accs


def test_dense_sharing_trains_an_lstm_on_variable_length_sequences(spark: SparkSession) -> None:
    from deepspark.config import LSTM
    from deepspark.config.layers import LastTimeStep

    rng = np.random.default_rng(4)
    seqs = [rng.normal(size=(int(t), 2)) for t in rng.integers(1, 6, 300)]
    rows = [(s.tolist(), int(s[:, 0].sum() > 0)) for s in seqs]
    df = spark.createDataFrame(rows, "steps array<array<double>>, label long")
    conf = NetworkConfig(
        seed=4,
        updater=Adam(learning_rate=3e-2),
        input_type=InputType.recurrent(2),
        layers=(LSTM(n_out=6), LastTimeStep(), Output(n_out=2)),
    )
    spark_net = SparkNetwork(spark, conf, GradientSharing(num_workers=2, batch_size_per_worker=30, encoding="dense"))
    spark_net.fit(df, "steps", "label", epochs=4)
    assert spark_net.evaluate(df, "steps", "label").accuracy() > 0.8


def test_unequal_partitions_do_not_hang(spark: SparkSession) -> None:
    x, y = _problem(110, seed=2)
    rows = [(x[i].astype(float).tolist(), int(y[i])) for i in range(len(x))]
    per_part = [rows[:10], rows[10:]]
    rdd = spark.sparkContext.parallelize([0, 1], 2).flatMap(lambda p: per_part[p])  # partitions of 10 and 100
    df = spark.createDataFrame(rdd, "features array<double>, label long")
    sizes = sorted(df.rdd.glom().map(len).collect())
    assert sizes == [10, 100]
    # a rank that waited for its peer past collective_timeout would fail the fit instead of returning
    master = GradientSharing(num_workers=2, batch_size_per_worker=16, repartition="never", collective_timeout=20.0)
    net = SparkNetwork(spark, _conf(), master).fit(df, epochs=2)
    assert net.iteration == 2 * 7  # both ranks ran ceil(100 / 16) steps; the short one wrapped around


def test_too_few_task_slots_fail_fast_naming_the_settings(spark: SparkSession) -> None:
    x, y = _problem(90)
    master = GradientSharing(num_workers=3, batch_size_per_worker=16)
    with pytest.raises(DistributedTrainingError, match=r"needs 3 task slots but the cluster offers 2.*num_workers"):
        SparkNetwork(spark, _conf(), master).fit(_frame(spark, x, y), epochs=1)
    # what makes it fail in seconds rather than Spark's ~10 minutes of slot checks (asserted here, not timed)
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.scheduler.barrier.maxConcurrentTasksCheck.interval") == "1s"
    assert conf.get("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures") == "3"


def test_nccl_backend_is_refused_before_any_work(spark: SparkSession) -> None:
    from deepspark.errors import ConfigError

    x, y = _problem(40)
    with pytest.raises(ConfigError, match=r"^backend: NCCL moves CUDA tensors only"):
        SparkNetwork(spark, _conf(), GradientSharing(num_workers=2, backend="nccl")).fit(_frame(spark, x, y))


def test_fit_from_an_export_path_trains_like_from_the_dataframe(spark: SparkSession, tmp_path: Any) -> None:
    from deepspark.data.export import export_minibatches

    x, y = _problem(160)
    export_minibatches(_frame(spark, x, y), str(tmp_path / "mb"), 20)
    master = GradientSharing(num_workers=2, batch_size_per_worker=20, encoding="dense")
    net = SparkNetwork(spark, _conf(), master).fit(str(tmp_path / "mb"), epochs=2)
    assert (net.epoch, net.iteration) == (2, 2 * 4)  # 8 minibatches of 20 -> 4 per worker
    assert not np.array_equal(net.params(), Network(_conf()).params())


def _silent_peer(host: str, port: int, prefix: str, index: int, rows: Any) -> Any:
    """Rank 1 joins, then never takes part in the collective rank 0 waits in."""
    import torch
    import torch.distributed as dist

    from deepspark.spark import _rendezvous

    for _ in rows:
        pass
    _rendezvous.join(host, port, prefix, index, 2, "gloo", 3.0)
    try:
        if index == 0:
            start = time.monotonic()
            try:
                dist.all_reduce(torch.ones(4))
            except RuntimeError as e:
                raise RuntimeError(f"rank 0 gave up after {time.monotonic() - start:.2f} s: {e}") from e
        else:
            time.sleep(30)  # the stuck peer: it holds its slot but sends nothing
    finally:
        _rendezvous.leave()
    yield index


def test_stuck_peer_fails_the_stage_within_the_collective_timeout(spark: SparkSession) -> None:
    import re

    store = DriverStore("127.0.0.1", 3.0)
    start = time.monotonic()
    try:
        with pytest.raises(Exception, match=r"rank 0 gave up after") as caught:
            spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitionsWithIndex(
                partial(_silent_peer, store.host, store.port, f"stuck{time.time_ns()}/")
            ).collect()
    finally:
        store.close()
    waited = float(re.search(r"rank 0 gave up after ([0-9.]+) s", str(caught.value)).group(1))  # type: ignore[union-attr]
    assert 2.5 <= waited < 10, waited  # the 3 s collective timeout, not the peer's 30 s sleep
    assert time.monotonic() - start < 120  # the job ended: no hang
