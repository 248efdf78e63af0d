"""Data for deepspark: `DataSet` minibatches, iterators, normalizers and file readers (single machine).

Nothing in this part imports pyspark; the DataFrame side builds on these types.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_SPARK_SIDE = {
    "ColumnSpec": "deepspark.data._arrow",
    "record_batch_to_arrays": "deepspark.data._arrow",
    "blocks_to_arrays": "deepspark.data._arrow",
    "ExportInfo": "deepspark.data.export",
    "resolve_columns": "deepspark.data.dataframe",
    "to_blocks": "deepspark.data.dataframe",
    "dataframe_to_arrays": "deepspark.data.dataframe",
    "export_minibatches": "deepspark.data.export",
    "read_exported": "deepspark.data.export",
    "executor_error": "deepspark.data.dataframe",
    "describe_sequences": "deepspark.data.sequences",
    "sequences_to_arrays": "deepspark.data.sequences",
    "ImageFolder": "deepspark.data.images",
    "decode_images": "deepspark.data.images",
    "read_images": "deepspark.data.images",
    "feature_pipeline": "deepspark.data.tabular",
    "label_names": "deepspark.data.tabular",
}


def __getattr__(name: str) -> Any:
    """The DataFrame-side names load on first use, so ``import deepspark.data`` stays free of pyarrow/pyspark."""
    module = _SPARK_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module 'deepspark.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
    *_SPARK_SIDE,
]
