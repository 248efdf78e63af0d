"""The driver side every training master shares: the fit context, job groups, round reports, checkpoints.

``SparkNetwork.fit`` builds one ``FitContext`` and hands it to the master's ``train``; a master reports each
round (or epoch) through ``round_done`` and each finished epoch through ``epoch_done``, which is where
listeners, progress callbacks and checkpoints run, on the driver's main thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepspark.errors import DataError
from deepspark.spark.events import PhaseTimer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from deepspark.nn import Network
    from deepspark.spark._prepare import PreparedData
    from deepspark.spark._trainer_state import TrainerState
    from deepspark.spark.stats import TrainingStats


@dataclass(frozen=True)
class RoundInfo:
    """What the driver reports after each averaging round or gradient-sharing epoch (progress bars, logs)."""

    epoch: int
    round: int
    rounds_in_epoch: int
    score: float
    examples: int
    seconds: float
    workers: int


@dataclass
class FitContext:
    """One ``SparkNetwork.fit`` as a training master sees it.

    Attributes:
        spark: the session.
        net: the driver's network; masters keep it at the state of the last finished round or epoch.
        data: the prepared training blocks.
        epochs: epochs to train in this call.
        timer: the driver's phase recorder (its events join ``stats`` at every report).
        stats: the run's phase statistics, when collected.
        listeners: driver-side ``SparkTrainingListener``s.
        on_round: called with a ``RoundInfo`` after every round (or epoch, for barrier stages).
        on_epoch: called with the finished epoch count; returning True stops training (early stopping).
        synchronous: ``on_epoch`` may stop training, so barrier stages wait for its verdict after each epoch.
        epoch_per_stage: ``on_epoch`` runs Spark jobs (a validation DataFrame), which need the task slots a
            barrier stage holds: end the stage at every epoch.
        on_diverged: called when a round's averaged state holds NaN/inf; raises ``TrainingDivergedError``
            (or warns and returns, and the state is applied as is).
        trainer_state: what the master's ranks carry between epochs besides the network (gradient sharing's
            tau and residuals): the resumed checkpoint's at the start, then the latest the driver took.
    """

    spark: SparkSession
    net: Network
    data: PreparedData
    epochs: int
    timer: PhaseTimer
    stats: TrainingStats | None = None
    listeners: Sequence[Any] = ()
    on_round: Callable[[RoundInfo], None] | None = None
    on_epoch: Callable[[int], bool | None] | None = None
    synchronous: bool = False
    epoch_per_stage: bool = False
    on_diverged: Callable[[str], None] | None = None
    trainer_state: TrainerState | None = None
    _reported: int = field(default=0, repr=False)

    @property
    def sc(self) -> Any:
        return self.spark.sparkContext

    def flush_events(self) -> None:
        """Move the driver's recorded phases into the stats."""
        events = self.timer.drain()
        if self.stats is not None and events:
            self.stats.add(events)

    def apply_state(self, params: np.ndarray, updater: np.ndarray | None) -> None:
        """Set the driver's network to a round's (or epoch's) averaged state; NaN/inf values mean divergence."""
        net = self.net
        buffers = [(net.flat.params, params, "parameters")]
        if updater is not None:
            buffers.append((net.updater.state, updater, "updater state"))
        for target, values, what in buffers:
            try:
                net._copy_into(target, values, what)  # checks shape and finiteness (one float64 sum)
                continue
            except DataError:
                if bool(np.isfinite(values).all()):
                    raise  # a shape or dtype problem, not divergence
            if self.on_diverged is not None:
                self.on_diverged(f"the averaged {what} hold NaN or infinite values")
            with torch.no_grad():  # warned: keep training on what the workers computed
                target.copy_(torch.from_numpy(np.array(values, copy=True)))

    def round_done(
        self,
        *,
        epoch: int,
        round: int,
        index_in_epoch: int,
        rounds_in_epoch: int,
        score_sum: float,
        minibatches: int,
        examples: int,
        started: float,
        readings: Sequence[bytes] = (),
    ) -> None:
        """Report a finished round (the driver's network already holds its result) to listeners and ``on_round``."""
        self.flush_events()
        score = score_sum / max(minibatches, 1)
        if self.listeners:
            from deepspark.spark.listeners import RoundReport, notify

            net = self.net
            workers = tuple(sorted((json.loads(r) for r in readings), key=lambda w: int(w.get("worker", 0))))
            events = self.stats.events()[self._reported :] if self.stats is not None else []
            report = RoundReport(
                iteration=net.iteration,
                epoch=net.epoch,
                round=round,
                score=score,
                examples=examples,
                minibatches=minibatches,
                seconds=time.time() - started,
                workers=workers,
                events=tuple(events),
                params=net.flat.params.detach().cpu().numpy(),
            )
            notify(self.listeners, "on_round_done", net, report)
        if self.stats is not None:
            self._reported = len(self.stats)
        if self.on_round is not None:
            self.on_round(
                RoundInfo(
                    epoch, index_in_epoch, rounds_in_epoch, score, examples, time.time() - started,
                    self.data.workers,
                )
            )

    def epoch_done(self) -> bool:
        """The driver's network finished an epoch: run the epoch callback; True means stop training."""
        if self.on_epoch is None:
            return False
        return bool(self.on_epoch(self.net.epoch))


@contextmanager
def job_group(sc: Any, group: str, description: str) -> Iterator[None]:
    """Run the block's Spark jobs in ``group`` (Spark UI, cancellation), then leave later jobs out of it."""
    sc.setJobGroup(group, description, interruptOnCancel=True)
    try:
        yield
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            sc.setLocalProperty(key, None)


def latest_checkpoint(path: str | Path) -> Path:
    """The archive to resume from: ``path`` itself, or the newest ``*.zip`` in a checkpoint folder."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.zip"), key=lambda f: f.stat().st_mtime)
        if not found:
            raise DataError(f"resume_from: no checkpoint archives (*.zip) in {p}")
        return found[-1]
    if not p.exists():
        raise DataError(f"resume_from: {p} does not exist")
    return p


__all__ = ["FitContext", "RoundInfo", "job_group", "latest_checkpoint"]
