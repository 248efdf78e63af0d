"""How the driver runs one chunk of a trial: as a one-task Spark job (the default), or as a distributed
``SparkNetwork.fit`` over the whole cluster (``trial_master=...``). Both return the same ``ChunkResult``."""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from deepspark.tune._trial_worker import MAX_ERROR_CHARS, ChunkResult, ChunkSpec, encode_state, restore_state, run_chunk

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class ChunkRunner(Protocol):
    """Runs epochs ``start..end`` of a trial from ``state`` under the Spark job tag ``tag``."""

    def run(self, trial: int, config_json: str, start: int, end: int, state: bytes, tag: str) -> ChunkResult: ...


@dataclass(frozen=True, slots=True)
class TaskRunner:
    """Each chunk is one Spark job with one task; the data comes from the search's broadcast, cached per worker."""

    spark: SparkSession
    data_bc: Any
    data_id: str
    batch_size: int
    metric: str

    def run(self, trial: int, config_json: str, start: int, end: int, state: bytes, tag: str) -> ChunkResult:
        sc = self.spark.sparkContext
        spec = ChunkSpec(
            data_id=self.data_id,
            trial=trial,
            config_json=config_json,
            start_epoch=start,
            end_epoch=end,
            batch_size=self.batch_size,
            metric=self.metric,
        )
        sc.addJobTag(tag)
        sc.setInterruptOnCancel(True)
        sc.setJobDescription(f"deepspark search: trial {trial}, epochs {start + 1}-{end}")
        try:
            rdd = sc.parallelize([state], 1).mapPartitions(partial(run_chunk, spec, self.data_bc))
            results: list[ChunkResult] = rdd.collect()
        finally:
            sc.removeJobTag(tag)
            sc.setJobDescription(None)  # type: ignore[arg-type]
        return results[0]


@dataclass(frozen=True, slots=True)
class DistributedRunner:
    """Each chunk is a distributed ``SparkNetwork.fit`` (one epoch at a time) scored on the validation DataFrame."""

    spark: SparkSession
    master: Any
    train_df: DataFrame
    validation_df: DataFrame
    features_col: Any
    label_col: str
    metric: str

    def run(self, trial: int, config_json: str, start: int, end: int, state: bytes, tag: str) -> ChunkResult:
        sc = self.spark.sparkContext
        began = time.time()
        scores: list[float] = []
        losses: list[float] = []
        new_state, error = b"", ""
        sc.addJobTag(tag)
        sc.setInterruptOnCancel(True)
        try:
            scores, losses, new_state = self._fit(config_json, start, end, state)
        except Exception as e:
            if _cancelled(e):
                raise
            error = "".join(traceback.format_exception_only(type(e), e)).strip()[:MAX_ERROR_CHARS]
        finally:
            sc.removeJobTag(tag)
        return ChunkResult(
            trial=trial,
            scores=tuple(scores),
            losses=tuple(losses),
            state=new_state,
            error=error,
            host=socket.gethostname(),
            pid=os.getpid(),
            start=began,
            end=time.time(),
            data_loads=0,
        )

    def _fit(self, config_json: str, start: int, end: int, state: bytes) -> tuple[list[float], list[float], bytes]:
        from deepspark.config._spec import Spec
        from deepspark.eval import RegressionEvaluation
        from deepspark.nn import Network
        from deepspark.spark import SparkNetwork
        from deepspark.tune.metrics import METRICS, from_evaluation

        net = Network(Spec.from_json(config_json))  # type: ignore[arg-type]
        if state:
            restore_state(net, state)
        spark_net = SparkNetwork(self.spark, net, self.master)
        scores, losses = [], []
        for _ in range(start, end):
            trained = spark_net.fit(self.train_df, self.features_col, self.label_col, epochs=1)
            last = trained.last_score
            losses.append(float(last) if last is not None else math.nan)
            if self.metric == "loss":
                scores.append(spark_net.score(self.validation_df, self.features_col, self.label_col))
            elif METRICS[self.metric].task == "classification":
                ev = spark_net.evaluate(self.validation_df, self.features_col, self.label_col)
                scores.append(from_evaluation(self.metric, ev))
            else:
                ev = spark_net.evaluate(self.validation_df, self.features_col, self.label_col, [RegressionEvaluation()])
                scores.append(from_evaluation(self.metric, ev))
        net = spark_net.network
        return scores, losses, encode_state(net.params(), net.updater_state(), net.epoch, net.iteration)


def _cancelled(exc: BaseException) -> bool:
    """Whether a Spark action failed because its job was cancelled (our tag), not because the trial failed."""
    text = str(exc)
    return "cancelled" in text.lower() and ("job" in text.lower() or "stage" in text.lower())
