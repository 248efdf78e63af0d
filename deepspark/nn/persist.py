"""Saving and loading a ``Network`` as a model archive (config JSON + flat buffers; never pickle)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from deepspark.config.layers import TorchLayer
from deepspark.config.root import config_from_json
from deepspark.errors import ConfigError, DeepSparkError, ModelFormatError
from deepspark.io.archive import PARAMS, UPDATER, Archive, read_archive, write_archive
from deepspark.nn.network import Network


def save_network(
    net: Network, path: str | os.PathLike[str], *, save_updater: bool = True, normalizer: Any = None
) -> None:
    """Write ``net`` to ``path`` (local or fsspec URL) atomically.

    ``normalizer`` defaults to ``net.normalizer`` (set when the network was loaded with one or trained
    through a pipeline that fitted one), so a reload applies the same preprocessing.
    """
    if net.config is None:
        raise DeepSparkError(
            "this network wraps a torch module instance (Network.from_module) and has no config to archive; "
            "build it as Network(ModuleConfig(factory='package.module:function', kwargs=..., input_shape=..., "
            "n_out=..., loss=...)) to get a network that saves, loads, exports and trains on Spark"
        )
    norm = normalizer if normalizer is not None else net.normalizer
    score = None if net.last_score is None else float(net.last_score)
    metadata: dict[str, Any] = {
        "epoch": net.epoch,
        "iteration": net.iteration,
        "score": score if score is None or math.isfinite(score) else None,
        "num_params": net.num_params(),
    }
    labels = getattr(net, "labels", None)
    if labels is not None:
        metadata["labels"] = [str(name) for name in labels]
    metadata["layout"] = [[seg.name, list(seg.shape)] for seg in net.flat.segments]  # names the first mismatch
    write_archive(
        path,
        Archive(
            config_json=net.config.to_json(),
            params=net.params(),
            updater_state=net.updater_state() if save_updater and net.updater.state.numel() else None,
            normalizer_json=None if norm is None else norm.to_json(),
            metadata=metadata,
        ),
    )


def _tensor_bounds(config_json: str, path: str | os.PathLike[str]) -> dict[str, int]:
    """The most values params and updater state may hold, from the config's shapes (nothing allocated)."""
    from deepspark.config.graph import GraphConfig
    from deepspark.config.network import NetworkConfig
    from deepspark.nn.counting import flat_size

    try:
        config = config_from_json(config_json)
    except ConfigError as e:
        raise ModelFormatError(f"model archive {path}: config.json is not a valid network config: {e}") from None
    if not isinstance(config, (NetworkConfig, GraphConfig)):
        return {}  # a wrapped module's size is known only once its factory builds it
    try:
        n = flat_size(config)
    except (ConfigError, RuntimeError, ValueError):
        return {}  # the full rebuild below reports what is wrong with the config
    return {PARAMS: n, UPDATER: config.updater.state_size(n)}


def load_network(path: str | os.PathLike[str], *, device: str = "cpu") -> Network:
    """Rebuild a ``Network`` from an archive; damaged or hostile archives raise ``ModelFormatError``."""
    archive = read_archive(path, expected=lambda text: _tensor_bounds(text, path))
    try:
        config = config_from_json(archive.config_json)
    except ConfigError as e:
        raise ModelFormatError(f"model archive {path}: config.json is not a valid network config: {e}") from None
    try:
        net = Network(config, device=device)  # type: ignore[arg-type]
    except ConfigError as e:  # a factory that is gone, or builds something else now
        raise ModelFormatError(
            f"model archive {path}: cannot rebuild the network{_factories(config)}: {e}"
        ) from e.__cause__
    dtype_name = getattr(config, "dtype", "float32")
    updater_name = type(getattr(config, "updater", None)).__name__
    _check_layout(archive.metadata.get("layout"), net, config, path)
    if archive.params.shape[0] != net.num_params():
        raise ModelFormatError(
            f"model archive {path}: params.safetensors has {archive.params.shape[0]} values but the config "
            f"builds a network with {net.num_params()}; the archive is inconsistent"
        )
    if str(archive.params.dtype) != str(net.flat.params.dtype).replace("torch.", ""):
        raise ModelFormatError(
            f"model archive {path}: params are {archive.params.dtype} but the config says {dtype_name}"
        )
    net.set_params(np.ascontiguousarray(archive.params))
    if archive.updater_state is not None:
        if archive.updater_state.shape[0] != net.updater.state.numel():
            raise ModelFormatError(
                f"model archive {path}: updater.safetensors has {archive.updater_state.shape[0]} values, "
                f"expected {net.updater.state.numel()} for {updater_name}"
            )
        net.set_updater_state(np.ascontiguousarray(archive.updater_state))
    meta = archive.metadata
    net.epoch = _count(meta, "epoch", path)
    net.iteration = _count(meta, "iteration", path)
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
            raise ModelFormatError(f"model archive {path}: metadata.json field 'labels' must be a list of strings")
        net.labels = tuple(labels)
    if archive.normalizer_json is not None:
        from deepspark.data.normalizers import normalizer_from_json

        try:
            net.normalizer = normalizer_from_json(archive.normalizer_json)
        except DeepSparkError as e:
            raise ModelFormatError(f"model archive {path}: normalizer.json is invalid: {e}") from None
    return net


def _count(meta: dict[str, Any], key: str, path: object) -> int:
    value = meta.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ModelFormatError(f"model archive {path}: metadata.json field {key!r} must be an int >= 0, got {value!r}")
    return value


def _factories(config: object) -> str:
    """`` (factory 'a:b', ...)`` for the module factories a config names, or ""."""
    refs = [layer.factory for layer in getattr(config, "layers", ()) if isinstance(layer, TorchLayer)]
    return f" (factory {', '.join(repr(r) for r in refs)})" if refs else ""


def _check_layout(layout: Any, net: Network, config: object, path: object) -> None:
    """The saved tensors (name, shape) must be the rebuilt network's; name the first one that is not."""
    if layout is None:  # archives written before the layout was recorded: the size check below still applies
        return
    if not isinstance(layout, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], list) for e in layout
    ):
        raise ModelFormatError(f"model archive {path}: metadata.json field 'layout' must be a list of [name, shape]")
    built = [(seg.name, list(seg.shape)) for seg in net.flat.segments]
    for i in range(max(len(built), len(layout))):
        saved = tuple(layout[i]) if i < len(layout) else None
        have = built[i] if i < len(built) else None
        if saved == have:
            continue
        name = (have or saved or ("?",))[0]
        owner = _owner(net, config, str(name))
        what = f"tensor {saved[0]!r} {tuple(saved[1])} in the archive" if saved else "no more tensors in the archive"
        made = f"{have[0]!r} {tuple(have[1])}" if have else "no such tensor"
        saved_total = sum(math.prod(e[1]) for e in layout)
        raise ModelFormatError(
            f"model archive {path}: the saved parameters do not match the network{owner}: first mismatch at "
            f"position {i}: {what}, the rebuilt network has {made} (the archive holds {saved_total} values, the "
            f"config builds a network with {net.num_params()}); the config, the factory or its kwargs changed "
            "since the archive was written"
        )


def _owner(net: Network, config: object, name: str) -> str:
    """`` built by factory 'a:b'`` when tensor ``name`` belongs to a ``TorchLayer``, else the config's factories."""
    role = net.roles.get(name)
    layers = getattr(config, "layers", ())
    if role is not None and role.layer < len(layers) and isinstance(layers[role.layer], TorchLayer):
        return f" built by factory {layers[role.layer].factory!r}"
    return _factories(config)
