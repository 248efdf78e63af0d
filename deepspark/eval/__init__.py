"""Mergeable, JSON-serializable evaluation metrics (DL4J's ``org.deeplearning4j.eval`` for numpy).

Every evaluation accumulates minibatches with ``eval(labels, predictions, mask=None)``, combines
shards with ``merge(other)`` (equal to evaluating everything at once), reports with ``stats()``
and round-trips exactly through ``to_dict``/``to_json``. ``from_dict``/``from_json`` rebuild any
of them from the ``"type"`` tag.

Example:
    >>> from deepspark.eval import Evaluation, from_json
    >>> ev = Evaluation(n_classes=2)
    >>> ev.eval([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> from_json(ev.to_json()).confusion_matrix().tolist()
    [[1, 0], [1, 1]]
"""

from __future__ import annotations

from deepspark.eval._base import BaseEvaluation, from_dict, from_json, registered_types
from deepspark.eval.calibration import EvaluationCalibration, Histogram, ReliabilityDiagram
from deepspark.eval.classification import Evaluation, EvaluationBinary
from deepspark.eval.regression import RegressionEvaluation
from deepspark.eval.roc import ROC, ROCBinary, ROCMultiClass

__all__ = [
    "BaseEvaluation",
    "Evaluation",
    "EvaluationBinary",
    "EvaluationCalibration",
    "Histogram",
    "ROC",
    "ROCBinary",
    "ROCMultiClass",
    "RegressionEvaluation",
    "ReliabilityDiagram",
    "from_dict",
    "from_json",
    "registered_types",
]
