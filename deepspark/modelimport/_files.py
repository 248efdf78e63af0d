"""Reading Keras model files safely: ``.keras`` archives (zip) and legacy HDF5 ``.h5``, with json and h5py only.

Nothing in a file is executed or unpickled. The architecture is read first (JSON) so that unsupported
and code-carrying layers are refused before any weight is touched; weights are then read one layer at a
time, each dataset checked before it is read: no HDF5 external or soft links, no external or virtual
storage, no filters beyond HDF5's built-in ones, numeric dtypes only, and the shape the architecture
implies. Every failure is a ``ModelFormatError`` or ``ModelImportError`` naming what was wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deepspark.errors import ModelFormatError, ModelImportError
from deepspark.modelimport._convert_base import WeightSpec, snake
from deepspark.modelimport._layer_config import KerasLayer

MAX_JSON_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 32 << 30
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SAFE_FILTERS = {1, 2, 3}  # deflate, shuffle, fletcher32: built into HDF5, no plugin is loaded
_RNN = ("vars", "cell/vars")
_SUBGROUPS: dict[str, tuple[str, ...]] = {
    "LSTM": _RNN,
    "GRU": _RNN,
    "SimpleRNN": _RNN,
    "Bidirectional": (
        "vars",
        "forward_layer/vars",
        "forward_layer/cell/vars",
        "backward_layer/vars",
        "backward_layer/cell/vars",
    ),
    "TimeDistributed": ("vars", "layer/vars"),
}
"""Where a ``.keras`` file keeps a layer's variables, in the order ``layer.weights`` lists them."""


@dataclass(frozen=True)
class ModelFile:
    """The architecture side of a Keras file: format, Keras version, model config and training config."""

    path: Path
    format: str  # "keras" (zip archive) or "h5" (legacy HDF5)
    keras_version: str
    model_config: Mapping[str, Any]
    training_config: Mapping[str, Any] | None

    @property
    def keras_major(self) -> int:
        head = self.keras_version.split(".", 1)[0]
        return int(head) if head.isdigit() else 2


def _json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFormatError(f"{what} is not valid JSON: {e}") from None


def _text_attr(attrs: Any, key: str) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise ModelFormatError(f"HDF5 attribute {key!r} must be text, got {type(value).__name__}")


def read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Read the architecture of a ``.keras`` or ``.h5`` file (recognized by content, not by extension)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelFormatError(f"cannot read {p}: {e.strerror or e}") from None
    if head.startswith(_ZIP_MAGIC):
        return _read_archive(p)
    if head == _HDF5_MAGIC:
        return _read_h5(p)
    raise ModelFormatError(f"{p} is neither a Keras .keras archive (zip) nor an HDF5 .h5 file")


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ModelFormatError(f"{name} in the archive declares {info.file_size} bytes, more than the {limit} allowed")
    with archive.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelFormatError(f"{name} in the archive is larger than the {limit} bytes allowed")
    return data


def _read_archive(p: Path) -> ModelFile:
    try:
        with zipfile.ZipFile(p) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFormatError(f"{p} is a zip archive without config.json: not a Keras .keras file")
            if "model.weights.h5" not in names:
                other = sorted(n for n in names if n.startswith("model.weights"))
                hint = f" (found {other}: only the default HDF5 weights are supported)" if other else ""
                raise ModelImportError(f"{p} has no model.weights.h5{hint}")
            config = _json(_member(archive, "config.json", MAX_JSON_BYTES), "config.json")
            meta: Any = {}
            if "metadata.json" in names:
                meta = _json(_member(archive, "metadata.json", 1 << 20), "metadata.json")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise ModelFormatError(f"{p} is not a readable zip archive (truncated or damaged?): {e}") from None
    if not isinstance(config, dict):
        raise ModelFormatError("config.json must hold a JSON object")
    version = meta.get("keras_version", "3") if isinstance(meta, dict) else "3"
    compile_config = config.get("compile_config")
    return ModelFile(
        p, "keras", str(version), config, compile_config if isinstance(compile_config, dict) else None
    )


def _open_h5(p: Path) -> h5py.File:
    try:
        return h5py.File(p, "r")
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"{p} is not a readable HDF5 file (truncated or damaged?): {e}") from None


def _read_h5(p: Path) -> ModelFile:
    with _open_h5(p) as f:
        try:
            config_text = _text_attr(f.attrs, "model_config")
            training_text = _text_attr(f.attrs, "training_config")
            version = _text_attr(f.attrs, "keras_version") or "2"
        except (OSError, KeyError, RuntimeError) as e:
            raise ModelFormatError(f"{p}: cannot read the HDF5 attributes: {e}") from None
    if config_text is None:
        raise ModelImportError(
            f"{p} holds no model_config: a weights-only file (save_weights) has no architecture to import; "
            "save the whole model with model.save()"
        )
    config = _json(config_text, "the model_config attribute")
    if not isinstance(config, dict):
        raise ModelFormatError("the model_config attribute must hold a JSON object")
    training = _json(training_text, "the training_config attribute") if training_text else None
    return ModelFile(p, "h5", version, config, training if isinstance(training, dict) else None)


# ------------------------------------------------------------------------------------------- weights


def _child(group: h5py.Group, name: str, where: str) -> Any:
    """``group[name]`` after checking that the link is an ordinary (hard) link inside this file."""
    if not name or "/" in name or name in (".", ".."):
        raise ModelImportError(f"{where}: invalid HDF5 path component {name!r}")
    try:
        link = group.get(name, getlink=True)
    except (KeyError, OSError, RuntimeError, ValueError) as e:
        raise ModelFormatError(f"{where}: cannot read HDF5 link {name!r}: {e}") from None
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise ModelImportError(
            f"{where}: {name!r} is an HDF5 external link to {link.filename!r}; external links are refused"
        )
    if isinstance(link, h5py.SoftLink):
        raise ModelImportError(f"{where}: {name!r} is an HDF5 soft link to {link.path!r}; links are refused")
    try:
        return group[name]
    except (KeyError, OSError, RuntimeError, ValueError) as e:
        raise ModelFormatError(f"{where}: cannot open {name!r}: {e}") from None


def _walk(group: h5py.Group, path: str, where: str) -> Any:
    node: Any = group
    for part in path.split("/"):
        if not isinstance(node, h5py.Group):
            return None
        node = _child(node, part, where)
        if node is None:
            return None
    return node


def _checked(ds: Any, spec: WeightSpec, where: str) -> np.ndarray:
    """Read one weight after checking its storage, dtype and shape."""
    what = f"{where}: weight {spec.name!r}"
    if not isinstance(ds, h5py.Dataset):
        raise ModelImportError(f"{what} is missing (no dataset where the file should hold it)")
    try:
        if ds.is_virtual or ds.external:
            raise ModelImportError(f"{what} is stored outside the file (virtual or external dataset); refused")
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in _SAFE_FILTERS:
                raise ModelImportError(f"{what} uses HDF5 filter {code}, which would load a plugin; refused")
        if ds.dtype.kind not in "fiu" or ds.dtype.fields is not None:
            raise ModelImportError(f"{what} has dtype {ds.dtype}; expected numbers")
        if tuple(ds.shape) != spec.shape:
            raise ModelImportError(
                f"{what} has shape {tuple(ds.shape)} in the file, but the layer's config implies {spec.shape}"
            )
        arr = np.asarray(ds[()], dtype=np.float32)
    except ModelFormatError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise ModelFormatError(f"{what} cannot be read (damaged file?): {e}") from None
    if not np.isfinite(arr).all():
        raise ModelImportError(f"{what} contains NaN or infinite values")
    return arr


class WeightStore:
    """Per-layer weight arrays from an open HDF5 file (``.keras`` layout or legacy ``.h5`` layout)."""

    def __init__(self, f: h5py.File, legacy: bool, layers: tuple[KerasLayer, ...], sequential: bool) -> None:
        self.f = f
        self.legacy = legacy
        self.paths: dict[str, str] = {}
        if not legacy:
            self.paths = self._keras3_paths(layers, sequential)

    def _keras3_paths(self, layers: tuple[KerasLayer, ...], sequential: bool) -> dict[str, str]:
        """Keras 3 stores layer i under ``layers/<snake class name>[_k]``; newer files also name it."""
        paths: dict[str, str] = {}
        used: dict[str, int] = {}
        for layer in layers:
            if sequential and layer.class_name == "InputLayer":
                continue
            base = snake(layer.class_name)
            n = used.get(base)
            used[base] = 0 if n is None else n + 1
            paths[layer.name] = f"layers/{base}" if n is None else f"layers/{base}_{n + 1}"
        root = _child(self.f, "layers", "the weights file")
        if isinstance(root, h5py.Group):
            for key in root:
                group = _child(root, key, "layers")
                own = _child(group, "vars", f"layers/{key}") if isinstance(group, h5py.Group) else None
                name = _text_attr(own.attrs, "name") if isinstance(own, h5py.Group) else None
                if name in paths:
                    paths[name] = f"layers/{key}"
        return paths

    def arrays(self, layer: KerasLayer, expected: tuple[WeightSpec, ...]) -> list[np.ndarray]:
        """The layer's weights in ``expected`` order, each checked against its expected shape."""
        where = layer.where()
        datasets = self._legacy(layer, where) if self.legacy else self._keras3(layer, where)
        if len(datasets) != len(expected):
            names = ", ".join(f"{w.name}{w.shape}" for w in expected) or "none"
            raise ModelImportError(
                f"{where}: the file holds {len(datasets)} weight arrays but the layer's config implies "
                f"{len(expected)} ({names})"
            )
        return [_checked(ds, spec, where) for ds, spec in zip(datasets, expected, strict=True)]

    def _keras3(self, layer: KerasLayer, where: str) -> list[Any]:
        base = _walk(self.f, self.paths.get(layer.name, f"layers/{layer.name}"), where)
        if base is None:
            return []
        found: list[Any] = []
        for sub in _SUBGROUPS.get(layer.class_name, ("vars",)):
            group = _walk(base, sub, where)
            if not isinstance(group, h5py.Group):
                continue
            keys = sorted(group.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
            if keys != [str(i) for i in range(len(keys))]:
                raise ModelImportError(f"{where}: unexpected entries {keys} in the weights group {sub!r}")
            found.extend(_child(group, k, where) for k in keys)
        return found

    def _legacy(self, layer: KerasLayer, where: str) -> list[Any]:
        root = _child(self.f, "model_weights", "the HDF5 file")
        if not isinstance(root, h5py.Group):
            raise ModelImportError("the HDF5 file has no model_weights group: no weights were saved with the model")
        group = _child(root, layer.name, where)
        if not isinstance(group, h5py.Group):
            return []
        names = group.attrs.get("weight_names")
        if names is None:
            return []
        out = []
        for raw in np.asarray(names).reshape(-1):
            name = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            out.append(_walk(group, name, where))
        return out


@contextmanager
def open_weights(model: ModelFile, layers: tuple[KerasLayer, ...], sequential: bool) -> Iterator[WeightStore]:
    """The weights of ``model``; a ``.keras`` archive's HDF5 member is extracted to a temporary file first."""
    if model.format == "h5":
        with _open_h5(model.path) as f:
            yield WeightStore(f, True, layers, sequential)
        return
    fd, tmp = tempfile.mkstemp(suffix=".weights.h5", prefix="deepspark-import-")
    try:
        with os.fdopen(fd, "wb") as out:
            _extract(model.path, out)
        with _open_h5(Path(tmp)) as f:
            yield WeightStore(f, False, layers, sequential)
    finally:
        os.unlink(tmp)


def _extract(path: Path, out: Any) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("model.weights.h5")
            if info.file_size > MAX_WEIGHTS_BYTES:
                raise ModelFormatError(f"model.weights.h5 declares {info.file_size} bytes, more than allowed")
            with archive.open(info) as src:
                shutil.copyfileobj(src, out, 1 << 20)  # zipfile checks the CRC when the member is fully read
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ModelFormatError(f"{path}: cannot extract model.weights.h5 (truncated or damaged?): {e}") from None
