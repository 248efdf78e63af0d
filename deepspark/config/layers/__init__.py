"""Layer specs: feed-forward, convolutional and recurrent layers, each a frozen JSON-round-trippable spec."""

from deepspark.config.layers._base import Layer
from deepspark.config.layers.conv import (
    Conv1D,
    Conv2D,
    Cropping2D,
    Deconv2D,
    GlobalPooling,
    Subsampling,
    Subsampling1D,
    Subsampling2D,
    Upsampling2D,
    ZeroPadding2D,
)
from deepspark.config.layers.core import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Embedding,
    EmbeddingSequence,
    LayerNorm,
    LossLayer,
    Output,
)
from deepspark.config.layers.recurrent import GRU, LSTM, Bidirectional, LastTimeStep, RnnOutput, SimpleRnn
from deepspark.config.layers.torch_layer import TorchLayer

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "BatchNorm",
    "Bidirectional",
    "Conv1D",
    "Conv2D",
    "Cropping2D",
    "Deconv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "EmbeddingSequence",
    "GlobalPooling",
    "LastTimeStep",
    "Layer",
    "LayerNorm",
    "LossLayer",
    "Output",
    "RnnOutput",
    "SimpleRnn",
    "Subsampling",
    "Subsampling1D",
    "Subsampling2D",
    "TorchLayer",
    "Upsampling2D",
    "ZeroPadding2D",
]
