"""``SparkRollouts``: experience collected by Spark tasks, each stepping its own environments, for the driver's learner.

Each collection is one Spark job of ``num_workers`` tasks. The driver broadcasts one Arrow message (the
policy's flat float32 weights, observation statistics, and every task's resume state); each task steps
its environments for ``n_steps`` and returns its trajectories as one Arrow message. Environments stay
alive in the Python workers between collections; a task that lands on a process without them (Python
workers are pooled, and a retried task may run anywhere) rebuilds them from the resume state, so the
result is the same wherever and however often a task runs. Phases (broadcast, map, learn) go into a
``TrainingStats`` timeline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from deepspark.errors import ConfigError, DataError, DistributedTrainingError, EnvironmentStepError
from deepspark.rl._rollout_worker import IterationState, RolloutSpec, decode_task_result, spark_collect
from deepspark.rl.env import check_env_id
from deepspark.rl.runner import Trajectories
from deepspark.spark.events import driver_event
from deepspark.spark.stats import TrainingStats

_WORKER_ERROR = re.compile(r"deepspark\.errors\.(EnvironmentStepError|DataError|ConfigError): (.+)")
_ERRORS: dict[str, type[Exception]] = {
    "EnvironmentStepError": EnvironmentStepError,
    "DataError": DataError,
    "ConfigError": ConfigError,
}
JOB_GROUP = "deepspark-rl-rollouts"


class SparkRollouts:
    """Collect rollouts on Spark: ``num_workers`` tasks per collection, the environments split evenly over them.

    The environment must be given by name (a Gymnasium id or a ``"module:factory"`` reference importable
    on the executors): executors rebuild it, nothing of it is pickled.

    Args:
        spark: A ``SparkSession``.
        num_workers: Tasks per collection (each needs a free task slot to run in parallel).

    Example:
        >>> spark = local_spark("local[2]")                                          # doctest: +SKIP
        >>> ppo = PPO("CartPole-v1", config=PPOConfig(num_envs=8),
        ...           rollouts=SparkRollouts(spark, num_workers=2))                  # doctest: +SKIP
        >>> ppo.train(total_steps=100_000)                                           # doctest: +SKIP
        >>> ppo.rollouts.training_stats().export_html("timeline.html")               # doctest: +SKIP
    """

    def __init__(self, spark: Any, num_workers: int = 2) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ConfigError(f"expected a positive int, got {num_workers!r}", "num_workers")
        if not hasattr(spark, "sparkContext"):
            raise ConfigError(f"expected a SparkSession, got {type(spark).__name__}", "spark")
        self.spark = spark
        self._num_workers = num_workers
        self._spec: RolloutSpec | None = None
        self._resume: list[bytes | None] = [None] * num_workers
        self.stats = TrainingStats(settings={"rollouts": "spark", "num_workers": num_workers}, num_workers=num_workers)

    @property
    def num_workers(self) -> int:
        """Tasks per collection."""
        return self._num_workers

    def open(self, spec: RolloutSpec, make: Callable[[], Any] | None) -> None:
        """Bind to a run; refuses environments that exist only as Python objects on the driver."""
        if make is not None:
            raise ConfigError(
                f"SparkRollouts needs the environment as a Gymnasium id or a 'module:factory' string, got "
                f"{spec.env!r} as a Python object: executors rebuild environments by name and never unpickle them",
                "env",
            )
        check_env_id(spec.env)
        self._spec = spec
        self._resume = [None] * self._num_workers

    def collect(self, state: IterationState) -> Trajectories:
        """One collection: one Spark job, one task per worker; trajectories concatenated in task order."""
        spec = self._spec
        if spec is None:
            raise ConfigError("SparkRollouts.collect before open(): the agent opens its rollouts in train()")
        sc = self.spark.sparkContext
        t0 = time.time()
        message = state.pack(self._resume)
        bc = sc.broadcast(message)
        self.stats.add([driver_event("broadcast", t0, time.time() - t0, state.count, bytes=len(message))])
        t0 = time.time()
        sc.setJobGroup(JOB_GROUP, f"deepspark rollouts, collection {state.count}")
        try:
            rdd = sc.parallelize(range(self._num_workers), self._num_workers)
            results = rdd.mapPartitionsWithIndex(partial(spark_collect, spec, bc)).collect()
        except Exception as e:
            _raise_from_spark(e, state.count)
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)
            bc.unpersist()
        if len(results) != self._num_workers:
            raise DistributedTrainingError(
                f"rollout collection {state.count}: expected {self._num_workers} task results, got {len(results)}"
            )
        parts = []
        for task, data in enumerate(results):
            traj, resume = decode_task_result(data)
            parts.append(traj)
            self._resume[task] = resume
        merged = Trajectories.concat(parts)
        self.stats.add(
            [
                driver_event(
                    "map", t0, time.time() - t0, state.count, steps=merged.num_steps,
                    step_seconds=merged.step_seconds, workers=self._num_workers,
                )
            ]
        )
        return merged

    def training_stats(self) -> TrainingStats:
        """The phase timeline of every collection so far (``export_html`` draws it)."""
        return self.stats

    def close(self) -> None:
        """Forget the run (executors drop its environments when a new run replaces it)."""
        self._spec = None


def _raise_from_spark(e: BaseException, count: int) -> None:
    """Re-raise a failed collection as the worker's own deepspark error, or a ``DistributedTrainingError``."""
    names = {c.__name__ for c in type(e).__mro__}
    if not names & {"Py4JJavaError", "PySparkException", "Py4JError", "PythonException", "SparkException"}:
        raise e
    text = str(e) + "\n" + str(getattr(e, "java_exception", "") or "")
    match = _WORKER_ERROR.search(text)
    if match is not None:
        raise _ERRORS[match.group(1)](match.group(2).strip()) from None
    lines = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[A-Za-z_][\w.]*(Error|Exception): ", ln)]
    cause = lines[-1] if lines else type(e).__name__
    raise DistributedTrainingError(
        f"rollout collection {count} failed and Spark's retries did not recover it: {cause[:500]}. "
        "Setting involved: spark.task.maxFailures (task retries)"
    ) from e


__all__ = ["SparkRollouts"]
