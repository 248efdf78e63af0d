"""Data set loaders on fixture files served by a local HTTP server (or built in the test): arrays, classes, types."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.datasets import catalog, mnist, synthetic_control
from deepspark.datasets._readers import cifar10_archive, emnist_classes, extract_member, idx_pair, iris_file
from deepspark.errors import DataError, DownloadError

SHARED_MNIST = Path("/work/shared/data/mnist")


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def _chart_rows(rng: np.random.Generator, per_class: int) -> str:
    rows = rng.normal(30, 5, (6 * per_class, 60))
    return "\n".join(" ".join(f"{v:.4f}" for v in row) for row in rows) + "\n"


def test_synthetic_control_end_to_end_records_hash_then_detects_change(
    file_server: Any, tmp_path: Path, seed: int
) -> None:
    text = _chart_rows(np.random.default_rng(seed), 3)
    file_server.files["synthetic_control.data"] = text.encode()
    data = synthetic_control(cache=tmp_path, mirror=file_server.url)
    assert data.features.shape == (18, 60, 1) and data.features.dtype == np.float32
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(6), 3))
    assert data.classes[1] == "cyclic" and data.input_type.describe() == "rnn(60x1)"
    np.testing.assert_allclose(data.features[0, :, 0], np.array(text.split("\n")[0].split(), np.float32))
    cached = tmp_path / "uci-synthetic-control" / "synthetic_control.data"
    stamp = cached.with_name(cached.name + ".sha256").read_text()
    assert stamp.split()[0] == __import__("hashlib").sha256(text.encode()).hexdigest()
    cached.write_text(text + "1 2 3\n")  # the cached copy changes behind our back
    with pytest.raises(DownloadError, match="the first download's hash"):
        synthetic_control(cache=tmp_path, mirror=file_server.url)


def test_mnist_refuses_bytes_that_are_not_the_published_files(file_server: Any, tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    file_server.files["t10k-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (5, 28, 28)))
    with pytest.raises(DownloadError) as info:
        mnist("test", cache=tmp_path, mirror=file_server.url)
    assert catalog.MNIST["test-images"].sha256 in str(info.value)  # the publisher's hash is what is required


@pytest.mark.skipif(not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(), reason="shared MNIST copy not present")
def test_mnist_reader_on_real_test_files_gives_published_counts() -> None:
    x, y = idx_pair(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 784) and float(x.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


def test_mnist_split_validated() -> None:
    with pytest.raises(DataError, match=r"split: expected one of \['train', 'test'\], got 'valid'"):
        mnist("valid")


def test_emnist_archive_members_transposed_and_letters_relabelled(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (4, 28, 28))
    labels = np.array([1, 2, 26, 5])
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("gzip/emnist-letters-train-images-idx3-ubyte.gz", _idx(images))
        z.writestr("gzip/emnist-letters-train-labels-idx1-ubyte.gz", _idx(labels))
        z.writestr("gzip/emnist-balanced-mapping.txt", "0 48\n1 49\n10 65\n")
    folder = tmp_path / "out"
    folder.mkdir()
    img = extract_member(archive, "gzip/emnist-letters-train-images-idx3-ubyte.gz", folder)
    lab = extract_member(archive, "gzip/emnist-letters-train-labels-idx1-ubyte.gz", folder)
    x, y = idx_pair(img, lab, transpose=True, label_offset=1)
    np.testing.assert_allclose(x[2].reshape(28, 28), images[2].T / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, [0, 1, 25, 4])
    assert emnist_classes(archive, "balanced") == ("0", "1", "A")
    with pytest.raises(DataError, match="no member"):
        extract_member(archive, "gzip/emnist-digits-train-images-idx3-ubyte.gz", folder)


def _cifar_tar(path: Path, rng: np.random.Generator, per_batch: int) -> dict[str, np.ndarray]:
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            records = rng.integers(0, 256, (per_batch, 3073)).astype(np.uint8)
            records[:, 0] %= 10
            batches[name] = records
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.nbytes
            tar.addfile(info, io.BytesIO(records.tobytes()))
    return batches


def test_cifar10_binary_archive_read_without_pickle(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batches = _cifar_tar(tmp_path / "c.tar.gz", rng, 3)
    x, y = cifar10_archive(tmp_path / "c.tar.gz", "train")
    assert x.shape == (15, 3072) and y.shape == (15,)
    np.testing.assert_array_equal(y[:3], batches["data_batch_1.bin"][:, 0])
    np.testing.assert_allclose(x[14], batches["data_batch_5.bin"][2, 1:] / 255.0, rtol=1e-6)
    xt, _ = cifar10_archive(tmp_path / "c.tar.gz", "test")
    assert xt.shape == (3, 3072)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes((tmp_path / "c.tar.gz").read_bytes()[:200])
    with pytest.raises(DataError, match="damaged archive"):
        cifar10_archive(bad, "train")


def test_iris_file_parsed_and_bad_rows_named(tmp_path: Path) -> None:
    path = tmp_path / "iris.data"
    path.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n6.3,3.3,6.0,2.5,Iris-virginica\n\n")
    x, y = iris_file(path)
    np.testing.assert_allclose(x, [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], rtol=1e-6)
    np.testing.assert_array_equal(y, [0, 2])
    path.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n5.1,x,1.4,0.2,Iris-setosa\n")
    with pytest.raises(DataError, match=r"iris.data:2: non-numeric"):
        iris_file(path)
