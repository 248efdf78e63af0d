"""Driver side of gradient sharing (DL4J's SharedTrainingMaster): training in barrier stages.

Every rank trains in lockstep inside one barrier stage (``_stage``), exchanging dense or threshold-encoded
updates each step (``_sharing_trainer``). The driver takes each epoch's state as the ranks publish it, and a
failed stage restarts from the last epoch the driver holds, tau included. Each rank's residual reaches the
driver only for checkpointed epochs (``checkpoint_dir``): a relaunch from such an epoch, and a fit resumed from
its checkpoint, hand every rank its residual back; otherwise a stage starts with empty residuals.
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
