"""Data set fetchers (DL4J's Datasets): MNIST, Fashion-MNIST, EMNIST, CIFAR-10, Iris and UCI synthetic control.

Each file is downloaded once into a cache, checked against its published SHA-256 and renamed into place
atomically; interrupted downloads resume. Loaders return numpy arrays (``LabeledData``) that also write
a Spark DataFrame.
"""

from deepspark.datasets._fetch import CACHE_ENV, MIRROR_ENV, RemoteFile, cache_dir, fetch
from deepspark.datasets._readers import LabeledData
from deepspark.datasets.loaders import cifar10, emnist, fashion_mnist, iris, mnist, synthetic_control

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "LabeledData",
    "RemoteFile",
    "cache_dir",
    "cifar10",
    "emnist",
    "fashion_mnist",
    "fetch",
    "iris",
    "mnist",
    "synthetic_control",
]
