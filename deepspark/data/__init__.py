"""Data for deepspark: `DataSet` minibatches, iterators, normalizers and file readers (single machine).

Nothing in this part imports pyspark; the DataFrame side builds on these types.
"""

from __future__ import annotations

from .dataset import DataSet, train_test_split
from .iterators import ArrayIterator, AsyncIterator, DataSetIterator, ListIterator
from .normalizers import (
    ImageScaler,
    MinMax,
    Normalizer,
    Standardize,
    normalizer_from_dict,
    normalizer_from_json,
)
from .readers import CsvData, load_digits, load_mnist, read_csv, read_idx

__all__ = [
    "ArrayIterator",
    "AsyncIterator",
    "CsvData",
    "DataSet",
    "DataSetIterator",
    "ImageScaler",
    "ListIterator",
    "MinMax",
    "Normalizer",
    "Standardize",
    "load_digits",
    "load_mnist",
    "normalizer_from_dict",
    "normalizer_from_json",
    "read_csv",
    "read_idx",
    "train_test_split",
]
