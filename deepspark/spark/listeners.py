"""The driver-side listener interface of Spark training: what a training master reports after each round or step.

Workers never talk to a listener: their readings travel back in the round result, and the driver calls
these hooks. Every training master (parameter averaging, gradient sharing) calls the same three hooks,
so one listener (``deepspark.stats.StatsListener``) works with both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from deepspark.nn import Network
    from deepspark.spark.events import PhaseEvent
    from deepspark.spark.stats import TrainingStats

log = logging.getLogger("deepspark")


@dataclass(frozen=True)
class RoundReport:
    """What the driver knows after one averaging round (or one gradient-sharing reporting step).

    Attributes:
        iteration: ``net.iteration`` after the round: minibatches each worker has fitted since training began.
        epoch: the epoch the round belongs to.
        round: the round (or step) index, counted over the whole fit.
        score: mean minibatch score over all workers' minibatches of the round.
        examples: examples fitted by all workers in the round.
        minibatches: minibatches fitted by all workers in the round.
        seconds: wall time of the round on the driver.
        workers: one dict per worker, as ``deepspark.spark._probes``/``worker_reading`` builds them
            (keys: worker, host, pid, examples, minibatches, fit_seconds, score, rss_bytes, torch_bytes, gc).
        events: the round's phase events (driver and workers), for the timeline.
        params: the flat parameters after the round; None means "read ``net.params()``".
    """

    iteration: int
    epoch: int
    round: int
    score: float
    examples: int
    minibatches: int
    seconds: float
    workers: tuple[dict[str, Any], ...] = ()
    events: tuple[PhaseEvent, ...] = ()
    params: np.ndarray | None = field(default=None, compare=False)


class SparkTrainingListener:
    """Base class of driver-side Spark listeners; override the hooks you need. All run on the driver thread."""

    def on_spark_fit_start(self, net: Network, info: dict[str, Any]) -> None:
        """Called once before the first round. ``info``: ``master`` (settings dict), ``num_workers``,
        ``spark_version``, ``spark_master`` (URL), ``app_id``."""

    def on_round_done(self, net: Network, report: RoundReport) -> None:
        """Called after every round, once the driver has applied the round's parameters to ``net``."""

    def on_spark_fit_end(self, net: Network, stats: TrainingStats | None) -> None:
        """Called once when ``fit`` returns (``stats``: the run's phase timings, when collected)."""


def notify(listeners: Sequence[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on every listener that has it; a listener's failure is logged, never fails training."""
    for listener in listeners:
        method = getattr(listener, hook, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:  # a broken listener must not cost the user a training run
            log.exception("training listener %s.%s failed; training continues", type(listener).__name__, hook)
