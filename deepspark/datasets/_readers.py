"""Reading the downloaded files into numpy arrays (IDX images, the CIFAR binary archive, CSV-like text files).

Archives are read member by member by exact name (nothing is extracted by a name found in the archive),
and every parser checks sizes before trusting them, so a damaged download gives a ``DataError``.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.config.input_types import InputType
from deepspark.data.readers import read_idx
from deepspark.errors import DataError


@dataclass(frozen=True)
class LabeledData:
    """Features and integer labels of one split, the class names, and the input type a network reads them with.

    Example:
        >>> data = mnist("test")                                     # doctest: +SKIP
        >>> net.evaluate(data.features, data.labels)                 # doctest: +SKIP
        >>> df = data.to_spark(spark)                                # doctest: +SKIP
    """

    features: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    input_type: InputType

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_spark(
        self,
        spark: Any,
        *,
        features_col: str = "features",
        label_col: str = "label",
        num_partitions: int | None = None,
    ) -> Any:
        """A DataFrame with an ``array<float>`` features column (one flat row per example) and an int label.

        Built through one Arrow table (no per-row Python objects); ``spark`` is a ``SparkSession``. Nothing
        here imports pyspark: the session does the work.
        """
        import pyarrow as pa

        n = len(self)
        flat = np.ascontiguousarray(self.features.reshape(n, -1), dtype=np.float32)
        values = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        table = pa.table({features_col: values.cast(pa.list_(pa.float32())), label_col: pa.array(self.labels)})
        df = spark.createDataFrame(table)
        return df.repartition(num_partitions) if num_partitions else df


def idx_pair(
    images: Path, labels: Path, *, transpose: bool = False, label_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28*28) as float32 in [0, 1] and labels as int64 from two IDX files of the same length."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{images.name} holds {x.shape}, {labels.name} {y.shape}: expected (N, h, w) images and N labels"
        )
    if transpose:  # EMNIST stores each image transposed
        x = x.transpose(0, 2, 1)
    features = (x.reshape(x.shape[0], -1).astype(np.float32)) / 255.0
    return features, y.astype(np.int64) - label_offset


def extract_member(archive: Path, member: str, folder: Path) -> Path:
    """Copy one named member of a zip archive into ``folder`` (once; atomically) and return its path."""
    target = folder / Path(member).name
    if target.is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
    except KeyError:
        raise DataError(f"{archive}: no member {member!r}; is this the right archive?") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{archive}: damaged archive ({e}); delete it to download it again") from None
    os.replace(tmp, target)
    return target


def emnist_classes(archive: Path, split: str) -> tuple[str, ...]:
    """Class names from the archive's ``emnist-<split>-mapping.txt`` (label, character code per line)."""
    try:
        with zipfile.ZipFile(archive) as z:
            text = z.read(f"gzip/emnist-{split}-mapping.txt").decode("ascii")
    except (KeyError, zipfile.BadZipFile, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{archive}: cannot read the {split} class mapping ({e})") from None
    names = []
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            names.append(chr(int(parts[1])))
    return tuple(names)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_RECORD = 1 + 3 * 32 * 32


def cifar10_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's binary release: records of 1 label byte + 3072 pixel bytes (channel-major 3x32x32)."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    chunks = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in names:
                member = tar.getmember(f"cifar-10-batches-bin/{name}")
                stream = tar.extractfile(member) if member.isfile() else None
                if stream is None:
                    raise DataError(f"{path}: {name} is not a regular file")
                data = stream.read()
                if len(data) % _CIFAR_RECORD:
                    raise DataError(f"{path}: {name} holds {len(data)} bytes, not whole {_CIFAR_RECORD}-byte records")
                chunks.append(np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD))
    except KeyError as e:
        raise DataError(f"{path}: missing {e}; is this cifar-10-binary.tar.gz?") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: damaged archive ({e}); delete it to download it again") from None
    records = np.concatenate(chunks)
    return records[:, 1:].astype(np.float32) / 255.0, records[:, 0].astype(np.int64)


IRIS_CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


def iris_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``sepal length, sepal width, petal length, petal width, class`` lines (blank lines ignored)."""
    rows, labels = [], []
    for i, line in enumerate(Path(path).read_text(encoding="ascii", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) != 5 or parts[4] not in IRIS_CLASSES:
            raise DataError(f"{path}:{i}: expected 4 numbers and an iris class, got {line!r}")
        try:
            rows.append([float(v) for v in parts[:4]])
        except ValueError:
            raise DataError(f"{path}:{i}: non-numeric measurement in {line!r}") from None
        labels.append(IRIS_CLASSES.index(parts[4]))
    return np.asarray(rows, np.float32), np.asarray(labels, np.int64)


SYNTHETIC_CONTROL_CLASSES = (
    "normal", "cyclic", "increasing trend", "decreasing trend", "upward shift", "downward shift"
)


def synthetic_control_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """600 control charts of 60 values, 100 per class in class order -> (600, 60, 1) sequences and labels."""
    try:
        values = np.loadtxt(path, dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{path}: not whitespace-separated numbers ({e})") from None
    if values.ndim != 2 or values.shape[0] % 6:
        raise DataError(f"{path}: expected 6 classes x N rows of values, got shape {values.shape}")
    per_class = values.shape[0] // 6
    labels = np.repeat(np.arange(6, dtype=np.int64), per_class)
    return values[:, :, None], labels


def check_split(split: Any, options: tuple[str, ...]) -> str:
    if split not in options:
        raise DataError(f"split: expected one of {list(options)}, got {split!r}")
    return str(split)
