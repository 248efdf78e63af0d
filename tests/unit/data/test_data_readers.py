"""Readers: IDX (raw, gzip, damaged, hostile), MNIST from a folder, scikit-learn digits, CSV."""

from __future__ import annotations

import gzip
import hashlib
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from deepspark.data import load_digits, load_mnist, read_csv, read_idx
from deepspark.errors import ConfigError, DataError

SHARED_MNIST = Path("/work/shared/data/mnist")
IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def _idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr``: written independently of the library, straight from the format."""
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write(path: Path, payload: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_uint8_images_round_trip(tmp_path: Path, compress: bool, seed: int) -> None:
    images = np.random.default_rng(seed).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    path = _write(tmp_path / "images-idx3-ubyte", _idx_bytes(images), compress)
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (7, 5, 4)
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_int32_vector_is_native_endian(tmp_path: Path, compress: bool) -> None:
    values = np.array([-(2**31), -1, 0, 1, 2**31 - 1, 123456], dtype=np.int32)
    got = read_idx(_write(tmp_path / "v.idx1", _idx_bytes(values), compress))
    assert got.dtype == np.dtype(np.int32) and got.dtype.isnative
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.float64])
def test_read_idx_every_type_code_reads_back(tmp_path: Path, dtype: type[np.generic]) -> None:
    values = (np.arange(24).reshape(2, 3, 4) - 12).astype(dtype)
    got = read_idx(_write(tmp_path / "a.idx", _idx_bytes(values)))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, values)


def test_read_idx_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    values = np.arange(6, dtype=np.uint8)
    got = read_idx(_write(tmp_path / "labels-idx1-ubyte", _idx_bytes(values), compress=True))
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_truncated_payload_raises_data_error_with_byte_counts(tmp_path: Path, compress: bool) -> None:
    data = _idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-5]
    with pytest.raises(DataError, match=r"declares 10x4x4 uint8 = 160 payload bytes, but the file holds 155 bytes"):
        read_idx(_write(tmp_path / "t.idx", data, compress))


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_oversized_payload_raises_data_error(tmp_path: Path, compress: bool) -> None:
    data = _idx_bytes(np.zeros(8, np.int32)) + b"\x00\x01\x02"
    with pytest.raises(DataError, match=r"= 32 payload bytes, but the file holds (35|more than 32) bytes"):
        read_idx(_write(tmp_path / "o.idx", data, compress))


def test_read_idx_cut_gzip_stream_raises_data_error(tmp_path: Path) -> None:
    packed = gzip.compress(_idx_bytes(np.arange(5000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"\x01\x00\x08\x01", "not an IDX file"),
        (b"PK\x03\x04", "not an IDX file"),
        (b"\x00\x00\x07\x01", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00", "too short"),
    ],
)
def test_read_idx_bad_magic_raises_data_error(tmp_path: Path, head: bytes, message: str) -> None:
    body = b"\x00\x00\x00\x01\x00" if len(head) == 4 else b""
    with pytest.raises(DataError, match=message):
        read_idx(_write(tmp_path / "bad.idx", head + body))


def test_read_idx_truncated_header_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(_write(tmp_path / "h.idx", b"\x00\x00\x08\x03\x00\x00\x00\x02"))


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_huge_declared_dims_in_tiny_file_fails_without_allocating(tmp_path: Path, compress: bool) -> None:
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    path = _write(tmp_path / "huge.idx", header + b"\x00" * 64, compress)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="payload bytes"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"reading a 100-byte file peaked at {peak} bytes"


def test_read_idx_moderate_false_claim_in_gzip_reads_only_present_bytes(tmp_path: Path) -> None:
    # 60 MB declared, 1 MB of incompressible bytes present: passes the deflate-ratio check, so the
    # bounded chunked read must catch it.
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 60_000_000)
    noise = np.random.default_rng(0).integers(0, 256, size=1_000_000, dtype=np.uint8).tobytes()
    path = _write(tmp_path / "claim.gz", header + noise, compress=True)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"= 60000000 payload bytes, but the file holds 1000000 bytes"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_read_idx_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open IDX file"):
        read_idx(tmp_path / "nope.idx")


def _fake_mnist(folder: Path, kind: str, n: int, images_name: str, labels_name: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    _write(folder / images_name.format(kind=kind), _idx_bytes(images), images_name.endswith(".gz"))
    _write(folder / labels_name.format(kind=kind), _idx_bytes(labels), labels_name.endswith(".gz"))
    return labels


@pytest.mark.parametrize(
    ("images_name", "labels_name"),
    [
        ("{kind}-images-idx3-ubyte.gz", "{kind}-labels-idx1-ubyte.gz"),
        ("{kind}-images-idx3-ubyte", "{kind}-labels-idx1-ubyte"),
        ("{kind}-images.idx3-ubyte", "{kind}-labels.idx1-ubyte.gz"),
    ],
)
def test_load_mnist_any_naming_variant_loads_scaled_floats(
    tmp_path: Path, images_name: str, labels_name: str, seed: int
) -> None:
    labels = _fake_mnist(tmp_path, "train", 12, images_name, labels_name, seed)
    x, y = load_mnist(tmp_path, kind="train")
    assert x.shape == (12, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(y, labels)
    images, _ = load_mnist(tmp_path, kind="train", flatten=False, normalize=False)
    assert images.shape == (12, 1, 28, 28) and images.max() > 1.0
    np.testing.assert_allclose(images.reshape(12, 784) / 255.0, x, rtol=1e-6)


def test_load_mnist_missing_files_raises_data_error_listing_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz, t10k-images.idx3-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_label_count_mismatch_raises_data_error(tmp_path: Path) -> None:
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DataError, match="expected 3 labels"):
        load_mnist(tmp_path)


def test_load_mnist_unknown_kind_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kind"):
        load_mnist(tmp_path, kind="test")  # type: ignore[arg-type]


@pytest.mark.skipif(not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="shared MNIST copy not present")
def test_load_mnist_shared_test_set_matches_published_counts() -> None:
    x, y = load_mnist(SHARED_MNIST, kind="t10k")
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    raw = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    rebuilt = b"\x00\x00\x08\x03" + struct.pack(">3I", *raw.shape) + raw.tobytes()
    assert hashlib.md5(rebuilt).hexdigest() == "2646ac647ad5339dbf082846283269ea"


def test_load_digits_returns_scaled_float32_and_int64_labels() -> None:
    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    raw, _ = load_digits(normalize=False)
    assert float(raw.max()) == 16.0


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv_string_labels_become_sorted_class_indices(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,species\n1.5,2,virginica\n3,4.25,setosa\n5,6,versicolor\n7,8,setosa\n")
    data = read_csv(path, label_col="species")
    assert data.class_names == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(data.y, [2, 0, 1, 0])
    assert data.y.dtype == np.int64 and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.x, [[1.5, 2], [3, 4.25], [5, 6], [7, 8]])
    assert data.feature_names == ("a", "b") and data.label_name == "species"
    assert data.to_dataset().num_examples == 4


def test_read_csv_int_labels_without_header_by_index(tmp_path: Path) -> None:
    path = _csv(tmp_path, "3;0.5;1\n1;0.25;0\n")
    data = read_csv(path, label_col=0, delimiter=";", header=False)
    np.testing.assert_array_equal(data.y, [3, 1])
    assert data.class_names is None
    np.testing.assert_array_equal(data.x, [[0.5, 1], [0.25, 0]])


def test_read_csv_selected_feature_columns_in_given_order(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,c,label\n1,2,3,0\n4,5,6,1\n")
    data = read_csv(path, label_col="label", feature_cols=["c", "a"])
    assert data.feature_names == ("c", "a")
    np.testing.assert_array_equal(data.x, [[3, 1], [6, 4]])


def test_read_csv_non_numeric_feature_raises_data_error_naming_column_and_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "height,weight,label\n1.0,2.0,a\n1.5,heavy,b\n2.0,3.0,a\n")
    with pytest.raises(DataError, match=r"column 'weight' has a non-numeric value 'heavy' at row 2 \(line 3"):
        read_csv(path, label_col="label")


def test_read_csv_missing_value_raises_data_error_naming_column_and_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x1,x2,y\n1,2,0\n3,4,1\n5,,0\n")
    with pytest.raises(DataError, match=r"column 'x2' has a missing value at row 3"):
        read_csv(path, label_col="y")


def test_read_csv_unknown_label_column_raises_data_error_listing_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x1,x2,y\n1,2,0\n")
    with pytest.raises(DataError, match=r"column 'label' not found; available: \['x1', 'x2', 'y'\]"):
        read_csv(path, label_col="label")
