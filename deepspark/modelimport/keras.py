"""``import_keras``: a Keras ``.keras`` or ``.h5`` model as a deepspark ``Network`` (weights included).

Reading needs only zipfile, json and h5py: neither TensorFlow nor Keras is imported. The result is an
ordinary network: it trains, evaluates, saves as a deepspark archive and runs on Spark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deepspark.config.graph import GraphConfig, LayerVertex
from deepspark.config.input_types import InputType
from deepspark.config.network import NetworkConfig
from deepspark.errors import ModelImportError
from deepspark.modelimport._assemble import (
    SUPPORTED_LAYERS,
    Assembly,
    functional_config,
    keras_input_type,
    sequential_config,
)
from deepspark.modelimport._files import WeightStore, open_weights, read_model_file
from deepspark.modelimport._layer_config import Notes
from deepspark.modelimport._topology import parse_model
from deepspark.modelimport._training import updater
from deepspark.nn.graph_model import GraphModel
from deepspark.nn.layers import CompiledLayer
from deepspark.nn.model import SequentialModel
from deepspark.nn.network import Network

log = logging.getLogger("deepspark.modelimport")


@dataclass(frozen=True)
class ImportedLayer:
    """One row of the import table: a Keras layer and what it became."""

    name: str
    keras_class: str
    layers: tuple[str, ...]
    output: str
    params: int


@dataclass(frozen=True)
class KerasImport:
    """An imported model with its layer table and the warnings raised while converting it."""

    network: Network
    format: str
    keras_version: str
    rows: tuple[ImportedLayer, ...]
    warnings: tuple[str, ...]

    def table(self) -> str:
        """The layer table as aligned text (what ``deepspark import-keras`` prints)."""
        header = ("Keras layer", "class", "deepspark", "output", "params")
        lines = [header] + [(r.name, r.keras_class, " + ".join(r.layers), r.output, f"{r.params:,}") for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        total = self.network.flat.n_trainable
        text.append(f"trainable parameters: {total:,}")
        return "\n".join(text)


def import_keras(path: str | os.PathLike[str], *, input_type: InputType | Sequence[InputType] | None = None) -> Network:
    """Import a Keras model file (``.keras`` archive or legacy ``.h5``) as a ``Network`` with its trained weights.

    Sequential models become a ``NetworkConfig``, Functional ones a ``GraphConfig`` (inputs and outputs in
    the Keras model's order). Images keep Keras' (height, width, channels) input layout: pass arrays as you
    would to ``model.predict``. The last layer of every output gets the compiled Keras loss (or one that fits
    its activation). Layers that hold code (``Lambda``) or custom classes are refused, never run.

    Args:
        path: the model file.
        input_type: the input type(s) to use where the file leaves sizes unknown (one per model input).

    Raises:
        ModelImportError: an unsupported or custom layer, or weights that do not fit the architecture.
        ModelFormatError: a truncated, damaged or non-Keras file.

    Example:
        >>> net = import_keras("model.keras")                 # doctest: +SKIP
        >>> probs = net.output(x_test)                        # doctest: +SKIP
        >>> net.fit(x_train, y_train, epochs=2)               # doctest: +SKIP
    """
    result = inspect_keras(path, input_type=input_type)
    for message in result.warnings:
        log.warning("%s: %s", os.fspath(path), message)
    return result.network


def inspect_keras(
    path: str | os.PathLike[str], *, input_type: InputType | Sequence[InputType] | None = None
) -> KerasImport:
    """Like ``import_keras`` but also returns the layer table and the conversion warnings."""
    model_file = read_model_file(path)
    model = parse_model(model_file.model_config, SUPPORTED_LAYERS, model_file.keras_major)
    notes = Notes()
    upd = updater(model_file.training_config, notes)
    training = model_file.training_config
    config: NetworkConfig | GraphConfig
    if model.kind == "sequential":
        if input_type is not None and not isinstance(input_type, InputType):
            raise ModelImportError("input_type: a Sequential model has one input; pass one InputType")
        t = input_type if input_type is not None else keras_input_type(model.input_shape, "the model's input")
        config, asm = sequential_config(model, t, upd, training, notes)
    else:
        overrides = (input_type,) if isinstance(input_type, InputType) else input_type
        config, asm = functional_config(model, None if overrides is None else tuple(overrides), upd, training, notes)
    network = Network(config)
    with open_weights(model_file, model.layers, model.kind == "sequential") as store:
        _load_weights(network, asm, store)
    network.model.eval()
    rows = _rows(network, asm)
    return KerasImport(network, model_file.format, model_file.keras_version, rows, tuple(notes.items))


def _compiled(network: Network) -> tuple[list[CompiledLayer], dict[str, int]]:
    """The network's compiled layers and each one's index by layer (vertex) name."""
    model = network.model
    if not isinstance(model, (SequentialModel, GraphModel)):  # pragma: no cover - imports always build configs
        raise TypeError("expected a network built from a config")
    return model.compiled, {name: i for i, name in enumerate(model.layer_names)}


def _load_weights(network: Network, asm: Assembly, store: WeightStore) -> None:
    """Copy every converted Keras weight into the network's flat buffer, checking each shape."""
    compiled, index = _compiled(network)
    with torch.no_grad():
        for placed in asm.placed:
            conv = placed.converted
            if conv.params is None:
                continue
            arrays = store.arrays(placed.keras, conv.weights)
            for role, params in conv.params(arrays).items():
                layer = compiled[index[placed.names[role]]]
                own: dict[str, torch.Tensor] = dict(layer.named_parameters())
                own.update(layer.named_buffers())
                missing = sorted(set(own) - set(params))
                if missing:
                    raise ModelImportError(f"{placed.keras.where()}: no value for {missing} (an importer bug)")
                for name, value in params.items():
                    target = own[name]
                    if tuple(target.shape) != value.shape:
                        raise ModelImportError(
                            f"{placed.keras.where()}: {name} converts to shape {value.shape}, the network holds "
                            f"{tuple(target.shape)}"
                        )
                    target.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _kinds(config: NetworkConfig | GraphConfig) -> dict[str, str]:
    """Class name of every named layer (sequential) or vertex (graph) of the final config."""
    if isinstance(config, NetworkConfig):
        return {layer.name or "": type(layer).__name__ for layer in config.layers}
    return {
        v.name: type(v.layer).__name__ if isinstance(v, LayerVertex) else type(v).__name__ for v in config.vertices
    }


def _rows(network: Network, asm: Assembly) -> tuple[ImportedLayer, ...]:
    compiled, index = _compiled(network)
    config = network.config
    kinds = _kinds(config) if isinstance(config, (NetworkConfig, GraphConfig)) else {}
    rows = [ImportedLayer(name, "InputLayer", ("input",), t.describe(), 0) for name, t in asm.input_types.items()]
    seen: set[str] = set()

    def params(names: list[str]) -> int:
        return sum(int(p.numel()) for n in names if n in index for p in compiled[index[n]].parameters())

    for placed in asm.placed:
        names = [placed.keras.name] if placed.converted.vertex is not None else list(placed.names.values())
        seen.update(names)
        rows.append(
            ImportedLayer(
                placed.keras.name,
                placed.keras.class_name,
                tuple(kinds.get(n, "?") for n in names),
                placed.output_type.describe(),
                params(names),
            )
        )
    for name, kind in kinds.items():  # the loss heads the importer appended
        if name not in seen:
            rows.append(ImportedLayer(name, "(added)", (kind,), "", params([name])))
    return tuple(rows)
