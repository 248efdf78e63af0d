"""Driver side of gradient sharing (DL4J's SharedTrainingMaster): training in barrier stages.

Every rank trains in lockstep inside one barrier stage (``_stage``), exchanging dense or threshold-encoded
updates each step (``_sharing_trainer``). The driver takes each epoch's state as the ranks publish it, and a
failed stage restarts from the last epoch the driver holds, tau and every rank's residual included (each rank
sends its residual, n floats, with every epoch's report), so a relaunched stage continues exactly where the
failed one's last epoch ended; checkpoints save the same state and ``resume_from`` hands it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark.spark import _stage

if TYPE_CHECKING:
    from deepspark.spark._driver import FitContext
    from deepspark.spark.masters import GradientSharing

JOB_GROUP = "deepspark-sharing"
"""Spark job group of the gradient-sharing stages."""


def train(master: GradientSharing, ctx: FitContext) -> None:
    """Run ``ctx.epochs`` epochs of gradient sharing, updating ``ctx.net`` after every epoch."""
    _stage.train(ctx, master, group=JOB_GROUP, what="gradient sharing")
