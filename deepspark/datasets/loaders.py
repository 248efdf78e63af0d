"""One call per data set: download once (verified, cached), read into numpy arrays, ready for a network or Spark.

Every loader takes ``cache`` (default ``$DEEPSPARK_DATA_DIR`` or ``~/.cache/deepspark/datasets``) and
``mirror`` (a base URL serving the same file names, or ``$DEEPSPARK_DATASETS_MIRROR``). Offline, the error
says which URL to fetch by hand and where to put the file.
"""

from __future__ import annotations

import os

import numpy as np

from deepspark.config.input_types import InputType
from deepspark.datasets import catalog
from deepspark.datasets._fetch import RemoteFile, cache_dir, fetch
from deepspark.datasets._readers import (
    CIFAR10_CLASSES,
    IRIS_CLASSES,
    SYNTHETIC_CONTROL_CLASSES,
    LabeledData,
    check_split,
    cifar10_archive,
    emnist_classes,
    extract_member,
    idx_pair,
    iris_file,
    synthetic_control_file,
)

Cache = str | os.PathLike[str] | None
_SPLITS = ("train", "test")
_DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)
EMNIST_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")


def _idx_set(
    files: dict[str, RemoteFile], split: str, cache: Cache, mirror: str | None
) -> tuple[np.ndarray, np.ndarray]:
    split = check_split(split, _SPLITS)
    images = fetch(files[f"{split}-images"], cache=cache, mirror=mirror)
    labels = fetch(files[f"{split}-labels"], cache=cache, mirror=mirror)
    return idx_pair(images, labels)


def mnist(split: str = "train", *, cache: Cache = None, mirror: str | None = None) -> LabeledData:
    """MNIST handwritten digits: 60,000 train / 10,000 test images, 28x28 grey, as flat rows in [0, 1].

    Example:
        >>> test = mnist("test")                                       # doctest: +SKIP
        >>> test.features.shape, test.input_type.describe()            # doctest: +SKIP
        ((10000, 784), 'conv_flat(28x28x1)')
    """
    x, y = _idx_set(catalog.MNIST, split, cache, mirror)
    return LabeledData(x, y, _DIGITS, InputType.convolutional_flat(28, 28, 1))


def fashion_mnist(split: str = "train", *, cache: Cache = None, mirror: str | None = None) -> LabeledData:
    """Fashion-MNIST (Zalando): MNIST's format and sizes with 10 kinds of clothing."""
    x, y = _idx_set(catalog.FASHION_MNIST, split, cache, mirror)
    return LabeledData(x, y, FASHION_CLASSES, InputType.convolutional_flat(28, 28, 1))


def emnist(
    split: str = "balanced", subset: str = "train", *, cache: Cache = None, mirror: str | None = None
) -> LabeledData:
    """EMNIST (NIST Special Database 19 in MNIST's format): ``split`` is balanced (47 classes), byclass (62),
    bymerge (47), digits, letters (26, labelled 0-25 here) or mnist. Images are turned upright.

    The whole archive (~560 MB) is downloaded once; the split's files are then extracted next to it.
    """
    split, subset = check_split(split, EMNIST_SPLITS), check_split(subset, _SPLITS)
    archive = fetch(catalog.EMNIST, cache=cache, mirror=mirror)
    folder = cache_dir(cache) / catalog.EMNIST.dataset
    stem = f"gzip/emnist-{split}-{subset}"
    images = extract_member(archive, f"{stem}-images-idx3-ubyte.gz", folder)
    labels = extract_member(archive, f"{stem}-labels-idx1-ubyte.gz", folder)
    x, y = idx_pair(images, labels, transpose=True, label_offset=1 if split == "letters" else 0)
    classes = emnist_classes(archive, split)
    if split == "letters":
        classes = tuple(chr(ord("a") + i) for i in range(26))
    return LabeledData(x, y, classes, InputType.convolutional_flat(28, 28, 1))


def cifar10(split: str = "train", *, cache: Cache = None, mirror: str | None = None) -> LabeledData:
    """CIFAR-10: 50,000 train / 10,000 test colour images, 32x32x3, as flat channel-major rows in [0, 1].

    Read from the binary release (no pickle is involved).
    """
    split = check_split(split, _SPLITS)
    x, y = cifar10_archive(fetch(catalog.CIFAR10, cache=cache, mirror=mirror), split)
    return LabeledData(x, y, CIFAR10_CLASSES, InputType.convolutional_flat(32, 32, 3))


def iris(*, cache: Cache = None, mirror: str | None = None) -> LabeledData:
    """Fisher's Iris: 150 flowers, 4 measurements, 3 species."""
    x, y = iris_file(fetch(catalog.IRIS, cache=cache, mirror=mirror))
    return LabeledData(x, y, IRIS_CLASSES, InputType.feed_forward(4))


def synthetic_control(*, cache: Cache = None, mirror: str | None = None) -> LabeledData:
    """UCI synthetic control charts (DL4J's sequence classification example): 600 series of 60 steps, 6 classes.

    Features are (600, 60, 1) sequences. UCI publishes no checksum for this file: its SHA-256 is recorded
    on first download and every later use checks against it.
    """
    x, y = synthetic_control_file(fetch(catalog.SYNTHETIC_CONTROL, cache=cache, mirror=mirror))
    return LabeledData(x, y, SYNTHETIC_CONTROL_CLASSES, InputType.recurrent(1, x.shape[1]))
