"""The closed sets of activation, loss and weight-init names a config may use."""

from __future__ import annotations

from typing import Literal, get_args

Activation = Literal[
    "relu",
    "relu6",
    "leakyrelu",
    "elu",
    "selu",
    "gelu",
    "swish",
    "tanh",
    "sigmoid",
    "hardsigmoid",
    "softmax",
    "softplus",
    "identity",
]
"""Activation functions. ``leakyrelu`` uses slope 0.01; ``softmax`` is over the last (feature) axis."""

Loss = Literal[
    "mcxent",
    "negativeloglikelihood",
    "xent",
    "mse",
    "mae",
    "l1",
    "l2",
    "hinge",
    "squared_hinge",
    "kl_divergence",
    "cosine_proximity",
    "poisson",
    "mape",
]
"""Loss functions, DL4J's names. ``xent`` is binary cross-entropy; ``l1``/``l2`` sum over outputs where
``mae``/``mse`` average; every loss is averaged over the examples of a minibatch."""

WeightInit = Literal[
    "xavier",
    "xavier_uniform",
    "relu",
    "he",
    "relu_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "uniform",
    "zero",
    "ones",
    "identity",
]
"""Weight initializations. ``relu`` and ``he`` are the same (He normal); ``identity`` needs square weights."""

ACTIVATIONS: tuple[str, ...] = get_args(Activation)
LOSSES: tuple[str, ...] = get_args(Loss)
WEIGHT_INITS: tuple[str, ...] = get_args(WeightInit)
