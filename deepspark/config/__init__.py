"""Frozen, validated, JSON-round-trippable specs: layers, updaters, schedules, input types, networks."""

from deepspark.config._spec import Spec, registered
from deepspark.config.graph import (
    ElementWise,
    GraphConfig,
    GraphVertex,
    L2Normalize,
    LayerVertex,
    Merge,
    Scale,
    Stack,
    Subset,
    Unstack,
)
from deepspark.config.graph_vertices import Dot
from deepspark.config.input_types import InputType
from deepspark.config.layers import (
    GRU,
    LSTM,
    Activation,
    BatchNorm,
    Bidirectional,
    Conv1D,
    Conv2D,
    Cropping1D,
    Cropping2D,
    Deconv2D,
    Dense,
    Dropout,
    Elu,
    Embedding,
    EmbeddingSequence,
    Flatten,
    GlobalPooling,
    LastTimeStep,
    Layer,
    LayerNorm,
    LeakyRelu,
    LossLayer,
    Masking,
    Output,
    Permute,
    PRelu,
    Relu,
    Reshape,
    RnnOutput,
    SimpleRnn,
    SpatialDropout,
    Subsampling,
    Subsampling1D,
    Subsampling2D,
    TorchLayer,
    Upsampling1D,
    Upsampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from deepspark.config.module import ModuleConfig
from deepspark.config.names import ACTIVATIONS, LOSSES, WEIGHT_INITS
from deepspark.config.network import FORMAT_VERSION, NetworkConfig
from deepspark.config.root import RootConfig, config_from_dict, config_from_json
from deepspark.config.schedules import (
    CycleSchedule,
    ExponentialSchedule,
    InverseSchedule,
    MapSchedule,
    PolySchedule,
    Schedule,
    SigmoidSchedule,
    StepSchedule,
    WarmupSchedule,
)
from deepspark.config.updaters import (
    AdaDelta,
    AdaGrad,
    Adam,
    AdaMax,
    AdamW,
    AmsGrad,
    Nadam,
    Nesterovs,
    NoOp,
    RmsProp,
    Sgd,
    Updater,
)

__all__ = [
    "ACTIVATIONS", "FORMAT_VERSION", "GRU", "LOSSES", "LSTM", "WEIGHT_INITS",
    "Activation", "AdaDelta", "AdaGrad", "AdaMax", "Adam", "AdamW", "AmsGrad", "BatchNorm", "Bidirectional",
    "Conv1D", "Conv2D", "Cropping2D", "CycleSchedule", "Deconv2D", "Dense", "Dropout", "ElementWise", "Embedding",
    "EmbeddingSequence", "ExponentialSchedule", "GlobalPooling", "GraphConfig", "GraphVertex", "InputType",
    "InverseSchedule", "L2Normalize", "LastTimeStep", "Layer", "LayerNorm", "LayerVertex", "LossLayer",
    "Cropping1D", "Dot", "Elu", "Flatten", "LeakyRelu", "MapSchedule", "Masking", "Merge", "ModuleConfig", "Nadam",
    "Nesterovs", "NetworkConfig", "NoOp", "Output", "Permute", "PolySchedule", "PRelu", "Relu", "Reshape", "RmsProp",
    "RnnOutput", "RootConfig", "Scale", "Schedule", "Sgd", "SigmoidSchedule", "SimpleRnn", "SpatialDropout", "Spec",
    "Stack", "StepSchedule", "Subsampling", "Subsampling1D", "Subsampling2D", "Subset", "TorchLayer", "Unstack",
    "Updater", "Upsampling1D", "Upsampling2D", "WarmupSchedule", "ZeroPadding1D", "ZeroPadding2D",
    "config_from_dict", "config_from_json", "registered",
]
