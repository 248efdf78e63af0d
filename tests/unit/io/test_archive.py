"""Round trips, atomic writes and construction checks of the model archive format."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest

from deepspark.errors import ModelFormatError
from deepspark.io import FORMAT_VERSION, Archive, read_archive, read_archive_metadata, write_archive

CONFIG = '{"layers": [{"type": "dense", "n_out": 3}], "seed": 42}'
NORMALIZER = '{"type": "standardize", "mean": [0.5], "std": [2.0]}'


def _archive(dtype: type[np.floating[Any]] = np.float32, *, optional: bool = True, n: int = 1000) -> Archive:
    rng = np.random.default_rng(7)
    return Archive(
        config_json=CONFIG,
        params=rng.standard_normal(n).astype(dtype),
        updater_state=rng.standard_normal(2 * n).astype(dtype) if optional else None,
        normalizer_json=NORMALIZER if optional else None,
        metadata={"epoch": 3, "iteration": 1200, "score": 0.25, "tags": ["mnist"]},
    )


def _same_bits(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture
def memory_url() -> Iterator[str]:
    url = f"memory://deepspark-tests/{uuid.uuid4().hex}/model.zip"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("optional", [True, False], ids=["with_optional", "required_only"])
def test_read_archive_after_write_round_trips_bit_identical(
    tmp_path: Path, dtype: type[np.floating[Any]], optional: bool
) -> None:
    original = _archive(dtype, optional=optional)
    write_archive(tmp_path / "model.zip", original)
    loaded = read_archive(tmp_path / "model.zip")
    assert loaded.config_json == CONFIG
    assert _same_bits(loaded.params, original.params)
    assert loaded.params.flags.writeable
    if optional:
        assert original.updater_state is not None and loaded.updater_state is not None
        assert _same_bits(loaded.updater_state, original.updater_state)
        assert loaded.normalizer_json == NORMALIZER
    else:
        assert loaded.updater_state is None
        assert loaded.normalizer_json is None


def test_write_archive_metadata_gets_version_and_utc_timestamp(tmp_path: Path) -> None:
    archive = dataclasses.replace(
        _archive(), metadata={"epoch": np.int64(4), "score": np.float32(0.5), "format_version": 99}
    )
    before = datetime.now(timezone.utc).replace(microsecond=0)
    write_archive(tmp_path / "m.zip", archive)
    meta = read_archive(tmp_path / "m.zip").metadata
    assert meta["format_version"] == FORMAT_VERSION
    assert isinstance(meta["deepspark_version"], str) and meta["deepspark_version"]
    created = datetime.fromisoformat(meta["created"])
    assert created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(timezone.utc)
    assert meta["epoch"] == 4 and meta["score"] == 0.5


def test_write_archive_members_are_exact_and_compressed_by_kind(tmp_path: Path) -> None:
    write_archive(tmp_path / "m.zip", _archive())
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
    assert methods == {
        "config.json": zipfile.ZIP_DEFLATED,
        "params.safetensors": zipfile.ZIP_STORED,
        "updater.safetensors": zipfile.ZIP_STORED,
        "normalizer.json": zipfile.ZIP_DEFLATED,
        "metadata.json": zipfile.ZIP_DEFLATED,
    }


def test_read_archive_memory_url_round_trips(memory_url: str) -> None:
    original = _archive(np.float64)
    write_archive(memory_url, original)
    loaded = read_archive(memory_url)
    assert _same_bits(loaded.params, original.params)
    assert loaded.metadata["epoch"] == 3


def test_write_archive_memory_url_without_overwrite_refuses_existing(memory_url: str) -> None:
    write_archive(memory_url, _archive())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_archive(memory_url, _archive(n=5), overwrite=False)
    assert read_archive(memory_url).params.shape == (1000,)


def test_write_archive_local_without_overwrite_refuses_existing(tmp_path: Path) -> None:
    write_archive(tmp_path / "m.zip", _archive())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_archive(tmp_path / "m.zip", _archive(n=5), overwrite=False)
    assert read_archive(tmp_path / "m.zip").params.shape == (1000,)


def test_write_archive_strided_params_writes_their_values(tmp_path: Path) -> None:
    base = np.arange(20, dtype=np.float32)
    write_archive(tmp_path / "m.zip", Archive(config_json="{}", params=base[::2]))
    np.testing.assert_array_equal(read_archive(tmp_path / "m.zip").params, base[::2])


def test_write_archive_failing_midway_leaves_existing_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.zip"
    write_archive(target, _archive())
    before = target.read_bytes()
    calls = []

    def failing_writestr(self: zipfile.ZipFile, name: Any, data: Any, **kwargs: Any) -> None:
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        original_writestr(self, name, data, **kwargs)

    original_writestr = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="disk full"):
        write_archive(target, _archive(np.float64, n=50))
    monkeypatch.undo()
    assert len(calls) == 2
    assert target.read_bytes() == before
    assert read_archive(target).params.shape == (1000,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]


def test_write_archive_unserializable_metadata_raises_and_keeps_existing(tmp_path: Path) -> None:
    target = tmp_path / "m.zip"
    write_archive(target, _archive())
    bad = dataclasses.replace(_archive(n=5), metadata={"callback": object()})
    with pytest.raises(ModelFormatError, match="metadata is not JSON-serializable"):
        write_archive(target, bad)
    assert read_archive(target).params.shape == (1000,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]


def test_archive_invalid_params_dtype_raises_and_existing_archive_still_loads(tmp_path: Path) -> None:
    target = tmp_path / "m.zip"
    write_archive(target, _archive())
    with pytest.raises(ModelFormatError, match="params: expected a 1-D float32 or float64 array, got int64"):
        write_archive(target, Archive(config_json="{}", params=np.arange(3)))  # type: ignore[arg-type]
    assert read_archive(target).params.shape == (1000,)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        pytest.param({"params": np.zeros(3, np.float16)}, "got float16", id="float16"),
        pytest.param({"params": np.zeros(3, bool)}, "got bool", id="bool"),
        pytest.param({"params": np.zeros((2, 2), np.float32)}, "shape (2, 2)", id="two_dim"),
        pytest.param({"params": [0.0, 1.0]}, "got list", id="not_ndarray"),
        pytest.param({"updater_state": np.zeros(3, np.float64)}, "updater_state has dtype float64", id="dtype_mix"),
        pytest.param({"config_json": "[1, 2]"}, "config_json must hold a JSON object", id="config_array"),
        pytest.param({"config_json": "{oops"}, "config_json is not valid JSON", id="config_invalid"),
        pytest.param({"normalizer_json": '{"a": 1, "a": 2}'}, "duplicate key 'a'", id="normalizer_dup_key"),
        pytest.param({"metadata": {1: "x"}}, "metadata: expected a dict with str keys", id="metadata_int_key"),
    ],
)
def test_archive_invalid_field_raises_model_format_error(kwargs: dict[str, Any], phrase: str) -> None:
    fields: dict[str, Any] = {"config_json": "{}", "params": np.zeros(3, np.float32), **kwargs}
    with pytest.raises(ModelFormatError) as info:
        Archive(**fields)
    assert phrase in str(info.value)


def test_read_archive_non_finite_params_loads_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    params = np.array([1.0, np.nan, -np.inf, -0.0, 1e-45], dtype=np.float32)
    write_archive(tmp_path / "m.zip", Archive(config_json="{}", params=params, metadata={"score": float("nan")}))
    with caplog.at_level(logging.WARNING, logger="deepspark.io.archive"):
        loaded = read_archive(tmp_path / "m.zip")
    assert _same_bits(loaded.params, params)
    assert np.isnan(loaded.metadata["score"])
    assert "NaN or inf" in caplog.text


def test_read_archive_finite_params_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_archive(tmp_path / "m.zip", Archive(config_json="{}", params=np.full(4, 3e38, np.float32)))
    with caplog.at_level(logging.WARNING, logger="deepspark.io.archive"):
        read_archive(tmp_path / "m.zip")
    assert caplog.text == ""


def test_read_archive_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_archive(tmp_path / "absent.zip")


def test_read_archive_metadata_reports_counts_without_reading_tensors(tmp_path: Path) -> None:
    target = tmp_path / "m.zip"
    write_archive(target, _archive(np.float64))
    # Damage the last byte of the parameter data: the CRC check of a full read now fails.
    blob = bytearray(target.read_bytes())
    end = blob.find(_archive(np.float64).params.tobytes()) + 1000 * 8 - 1
    blob[end] ^= 0xFF
    target.write_bytes(bytes(blob))
    info = read_archive_metadata(target)
    assert (info.num_params, info.params_dtype) == (1000, "float64")
    assert info.has_updater and info.has_normalizer
    assert json.loads(info.config_json)["seed"] == 42
    assert info.metadata["format_version"] == FORMAT_VERSION
    assert set(info.members) == {
        "config.json",
        "params.safetensors",
        "updater.safetensors",
        "normalizer.json",
        "metadata.json",
    }
    with pytest.raises(ModelFormatError, match=r"'params\.safetensors' is corrupted"):
        read_archive(target)


def test_read_archive_metadata_required_only_reports_no_optional_members(tmp_path: Path) -> None:
    write_archive(tmp_path / "m.zip", _archive(optional=False, n=7))
    info = read_archive_metadata(tmp_path / "m.zip")
    assert info.num_params == 7 and info.params_dtype == "float32"
    assert not info.has_updater and not info.has_normalizer


def test_write_archive_file_url_writes_local_file_atomically(tmp_path: Path) -> None:
    write_archive(f"file://{tmp_path}/m.zip", _archive(n=9))
    assert read_archive(tmp_path / "m.zip").params.shape == (9,)
    assert read_archive(f"file://{tmp_path}/m.zip").params.shape == (9,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]
