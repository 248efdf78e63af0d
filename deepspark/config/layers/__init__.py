"""Layer specs: feed-forward, convolutional and recurrent layers, each a frozen JSON-round-trippable spec."""

from deepspark.config.layers._base import Layer
from deepspark.config.layers.activations import Elu, LeakyRelu, PRelu, Relu
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
from deepspark.config.layers.sequence import Cropping1D, Masking, SpatialDropout, Upsampling1D, ZeroPadding1D
from deepspark.config.layers.shape import Flatten, Permute, Reshape
from deepspark.config.layers.torch_layer import TorchLayer

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "BatchNorm",
    "Bidirectional",
    "Conv1D",
    "Conv2D",
    "Cropping1D",
    "Cropping2D",
    "Deconv2D",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "EmbeddingSequence",
    "Flatten",
    "GlobalPooling",
    "LastTimeStep",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LossLayer",
    "Masking",
    "Output",
    "PRelu",
    "Permute",
    "Relu",
    "Reshape",
    "RnnOutput",
    "SimpleRnn",
    "SpatialDropout",
    "Subsampling",
    "Subsampling1D",
    "Subsampling2D",
    "Upsampling1D",
    "TorchLayer",
    "Upsampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
]
