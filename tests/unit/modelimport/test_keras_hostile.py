"""Hostile and damaged Keras files: each gives ModelImportError/ModelFormatError, and nothing in them is run."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from deepspark.errors import ModelFormatError, ModelImportError
from deepspark.modelimport import import_keras


def _small(keras: Any) -> Any:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="hidden"), keras.layers.Dense(2)])


def _rezip(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a .keras archive member by member through ``edit`` (None drops the member)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def _edit_weights(src: Path, dst: Path, tmp: Path, change: Callable[[h5py.File], None]) -> Path:
    """A copy of a .keras archive whose model.weights.h5 went through ``change``."""
    inner = tmp / "inner.weights.h5"
    with zipfile.ZipFile(src) as z:
        inner.write_bytes(z.read("model.weights.h5"))
    with h5py.File(inner, "r+") as f:
        change(f)
    payload = inner.read_bytes()
    return _rezip(src, dst, lambda name, data: payload if name == "model.weights.h5" else data)


def _lambda_model(keras: Any, marker: Path) -> Any:
    # The lambda's code goes into the file (marshalled bytecode); running it would create the marker.
    effect = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    return keras.Sequential([keras.Input((3,)), keras.layers.Lambda(effect), keras.layers.Dense(2)])


def test_import_keras_lambda_refused_and_its_code_never_runs(quiet_keras: Any, tmp_path: Path) -> None:
    marker = tmp_path / "lambda-ran"
    path = tmp_path / "lambda.keras"
    _lambda_model(quiet_keras, marker).save(path)
    marker.unlink()  # Keras ran the lambda once while building the model
    with pytest.raises(ModelImportError, match=r"'lambda' \(Lambda\) holds Python code") as info:
        import_keras(path)
    assert "never runs code" in str(info.value)
    assert not marker.exists()
    # The payload is live: Keras itself, told to trust the file, runs it.
    loaded = quiet_keras.saving.load_model(path, safe_mode=False)
    loaded.predict(np.zeros((1, 3), np.float32), verbose=0)
    assert marker.read_text() == "ran"


def test_import_keras_lambda_refused_before_its_payload_is_read(quiet_keras: Any, tmp_path: Path) -> None:
    """A Lambda whose serialized function is garbage gives the same clean refusal: the payload is never decoded."""
    path = tmp_path / "lambda.keras"
    _lambda_model(quiet_keras, tmp_path / "unused").save(path)

    def spoil(name: str, data: bytes) -> bytes:
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][1]["config"]["function"] = {"class_name": "__lambda__", "config": "%%not-b64%%"}
        return json.dumps(config).encode()

    bad = _rezip(path, tmp_path / "spoiled.keras", spoil)
    with pytest.raises(ModelImportError, match="holds Python code"):
        import_keras(bad)


def test_import_keras_h5_lambda_refused(quiet_keras: Any, tmp_path: Path) -> None:
    marker = tmp_path / "lambda-ran"
    path = tmp_path / "lambda.h5"
    _lambda_model(quiet_keras, marker).save(path)
    marker.unlink()
    with pytest.raises(ModelImportError, match="Lambda"):
        import_keras(path)
    assert not marker.exists()


def test_import_keras_custom_layer_class_refused(quiet_keras: Any, tmp_path: Path) -> None:
    @quiet_keras.saving.register_keras_serializable(package="Evil")
    class Doubler(quiet_keras.layers.Layer):  # type: ignore[name-defined,misc]
        def call(self, x: Any) -> Any:
            return x * 2

    model = quiet_keras.Sequential([quiet_keras.Input((3,)), Doubler(name="doubler"), quiet_keras.layers.Dense(2)])
    path = tmp_path / "custom.keras"
    model.save(path)
    with pytest.raises(ModelImportError, match=r"'doubler' \(Doubler\) is a custom object \('Evil>Doubler'\)"):
        import_keras(path)


def test_import_keras_unsupported_layer_names_it_and_lists_supported(quiet_keras: Any, tmp_path: Path) -> None:
    L = quiet_keras.layers
    model = quiet_keras.Sequential([quiet_keras.Input((3,)), L.GaussianNoise(0.1, name="noise"), L.Dense(2)])
    path = tmp_path / "noise.h5"
    model.save(path)
    with pytest.raises(ModelImportError) as info:
        import_keras(path)
    message = str(info.value)
    assert "'noise' (GaussianNoise) is not supported" in message
    assert "supported layers:" in message and "Conv2D" in message and "LSTM" in message


def test_import_keras_nested_and_shared_layers_refused(quiet_keras: Any, tmp_path: Path) -> None:
    L = quiet_keras.layers
    inner = _small(quiet_keras)
    inp = quiet_keras.Input((4,))
    nested = quiet_keras.Model(inp, L.Dense(1)(inner(inp)))
    nested.save(tmp_path / "nested.keras")
    with pytest.raises(ModelImportError, match="nested model"):
        import_keras(tmp_path / "nested.keras")
    shared_dense = L.Dense(3, name="shared")
    a, b = quiet_keras.Input((4,)), quiet_keras.Input((4,))
    shared = quiet_keras.Model([a, b], L.Dense(1)(L.Add()([shared_dense(a), shared_dense(b)])))
    shared.save(tmp_path / "shared.keras")
    with pytest.raises(ModelImportError, match="'shared' is called 2 times"):
        import_keras(tmp_path / "shared.keras")


def test_import_keras_missing_weights_keras_archive(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)

    def drop_bias(f: h5py.File) -> None:
        del f["layers/dense/vars/1"]

    bad = _edit_weights(path, tmp_path / "missing.keras", tmp_path, drop_bias)
    with pytest.raises(ModelImportError, match=r"'hidden' \(Dense\): the file holds 1 weight arrays .* implies 2"):
        import_keras(bad)
    no_weights = _rezip(path, tmp_path / "none.keras", lambda n, d: None if n == "model.weights.h5" else d)
    with pytest.raises(ModelImportError, match=r"no model\.weights\.h5"):
        import_keras(no_weights)


def test_import_keras_missing_weights_h5(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.h5"
    _small(quiet_keras).save(path)
    with h5py.File(path, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights/hidden"].attrs["weight_names"]]
        del f["model_weights/hidden"][names[0]]
    with pytest.raises(ModelImportError, match="weight 'kernel' is missing"):
        import_keras(path)


def test_import_keras_wrong_shapes_name_layer_weight_and_both_shapes(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)

    def widen(name: str, data: bytes) -> bytes:
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][1]["config"]["units"] = 6
        return json.dumps(config).encode()

    bad = _rezip(path, tmp_path / "wide.keras", widen)
    with pytest.raises(ModelImportError) as info:
        import_keras(bad)
    assert "'hidden' (Dense): weight 'kernel' has shape (4, 5) in the file" in str(info.value)
    assert "implies (4, 6)" in str(info.value)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_import_keras_truncated_file_model_format_error(quiet_keras: Any, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"small.{fmt}"
    _small(quiet_keras).save(path)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="truncated or damaged"):
        import_keras(cut)


def test_import_keras_h5_external_link_refused(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.h5"
    _small(quiet_keras).save(path)
    target = tmp_path / "elsewhere.h5"
    with h5py.File(target, "w") as f:
        f.create_dataset("kernel", data=np.ones((4, 5), np.float32))
    with h5py.File(path, "r+") as f:
        group = f["model_weights/hidden"]
        name = group.attrs["weight_names"][0]
        name = name.decode() if isinstance(name, bytes) else name
        parent, leaf = name.rsplit("/", 1)
        del group[name]
        group[parent][leaf] = h5py.ExternalLink(str(target), "/kernel")
    with pytest.raises(ModelImportError, match=r"'kernel' is an HDF5 external link to .*elsewhere\.h5"):
        import_keras(path)


def test_import_keras_archive_external_and_soft_links_refused(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)

    def external(f: h5py.File) -> None:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"]["0"] = h5py.ExternalLink("/etc/hostname", "/x")

    with pytest.raises(ModelImportError, match="external link to '/etc/hostname'"):
        import_keras(_edit_weights(path, tmp_path / "ext.keras", tmp_path, external))

    def soft(f: h5py.File) -> None:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars"]["1"] = h5py.SoftLink("/layers/dense_1/vars/1")

    with pytest.raises(ModelImportError, match="soft link"):
        import_keras(_edit_weights(path, tmp_path / "soft.keras", tmp_path, soft))


def test_import_keras_nan_weight_refused(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)

    def poison(f: h5py.File) -> None:
        f["layers/dense_1/vars/0"][0, 0] = np.nan

    with pytest.raises(ModelImportError, match="NaN or infinite"):
        import_keras(_edit_weights(path, tmp_path / "nan.keras", tmp_path, poison))


def test_import_keras_not_a_model_weights_only_and_bad_json(quiet_keras: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFormatError, match=r"neither a Keras \.keras archive"):
        import_keras(junk)
    weights_only = tmp_path / "w.weights.h5"
    _small(quiet_keras).save_weights(weights_only)
    with pytest.raises(ModelImportError, match="weights-only file"):
        import_keras(weights_only)
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)
    bad = _rezip(path, tmp_path / "json.keras", lambda n, d: b"{not json" if n == "config.json" else d)
    with pytest.raises(ModelFormatError, match=r"config\.json is not valid JSON"):
        import_keras(bad)
    with pytest.raises(ModelFormatError, match="cannot read"):
        import_keras(tmp_path / "absent.keras")


def test_import_keras_bad_config_values_name_layer_and_key(quiet_keras: Any, tmp_path: Path) -> None:
    path = tmp_path / "small.keras"
    _small(quiet_keras).save(path)

    def corrupt(name: str, data: bytes) -> bytes:
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][1]["config"]["units"] = "five"
        return json.dumps(config).encode()

    with pytest.raises(ModelImportError, match=r"'hidden' \(Dense\): units must be an int >= 1, got 'five'"):
        import_keras(_rezip(path, tmp_path / "units.keras", corrupt))


def test_model_import_error_is_a_model_format_error() -> None:
    assert issubclass(ModelImportError, ModelFormatError)
