"""Sequence rows from Arrow (no Spark): padding, masks, sliced batches, wire round trip through blocks, bad values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from deepspark.data._arrow import ColumnSpec, arrays_to_block_batch, blocks_to_arrays, record_batch_to_arrays
from deepspark.data._sequence_arrow import unpack
from deepspark.errors import ConfigError, DataError

SEQS = [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[7.0, 8.0]], [[9.0, 10.0], [11.0, 12.0]]]


def _spec(timesteps: int = 0, label_kind: str = "index", n_labels: int = -1) -> ColumnSpec:
    return ColumnSpec(
        features=("s",),
        feature_kind="sequence",
        n_features=2,
        label="y",
        label_kind=label_kind,  # type: ignore[arg-type]
        n_label_values=n_labels,
        timesteps=timesteps,
    )


def test_sequence_rows_pad_mask_and_unpack_from_a_sliced_batch() -> None:
    batch = pa.RecordBatch.from_pydict({"s": SEQS, "y": [0, 1, 2]}).slice(1, 2)
    x, y, _ = record_batch_to_arrays(batch, _spec())
    assert x.shape == (2, 2 * 2 + 2)  # batch-local T=2: padded values then mask
    ds = unpack(_spec(), x, y)
    np.testing.assert_array_equal(ds.features, [[[7, 8], [0, 0]], [[9, 10], [11, 12]]])
    np.testing.assert_array_equal(ds.features_mask, [[1, 0], [1, 1]])
    assert ds.labels is not None and ds.labels.tolist() == [1, 2] and ds.labels_mask is None


def test_sequence_rows_travel_through_binary_blocks_unchanged() -> None:
    spec = _spec(timesteps=4)
    x, y, _ = record_batch_to_arrays(pa.RecordBatch.from_pydict({"s": SEQS, "y": [0, 1, 2]}), spec)
    block = arrays_to_block_batch({"worker": 0, "part": 0}, x, y)
    x2, y2 = blocks_to_arrays(block.to_pylist(), spec)
    np.testing.assert_array_equal(x2, x)
    ds = unpack(spec, x2, y2)
    assert ds.features.shape == (3, 4, 2)
    np.testing.assert_array_equal(ds.features_mask.sum(axis=1), [3, 1, 2])  # type: ignore[union-attr]


def test_per_step_labels_pad_to_the_feature_steps_of_the_batch() -> None:
    batch = pa.RecordBatch.from_pydict({"s": SEQS, "y": [[1, 0], [2], [0, 0]]})
    x, y, _ = record_batch_to_arrays(batch, _spec(label_kind="sequence_index"))
    ds = unpack(_spec(label_kind="sequence_index"), x, y)
    assert ds.labels is not None and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, [[1, 0, 0], [2, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(ds.labels_mask, [[1, 1, 0], [1, 0, 0], [1, 1, 0]])


@pytest.mark.parametrize(
    ("seqs", "labels", "kind", "message"),
    [
        ([[[1.0, 2.0], [3.0]]], [0], "index", r"column 's', row 0 of the batch has a time step of 1 feature values"),
        ([[[1.0, 2.0], None]], [0], "index", r"column 's', row 0 of the batch has a null time step"),
        ([[]], [0], "index", r"column 's', row 0 of the batch is an empty sequence"),
        ([[[1.0, float("nan")]]], [0], "index", r"column 's', row 0 of the batch has NaN or infinite features"),
        ([[[1.0, 2.0]]], [[0.5]], "sequence_index", r"column 'y', row 0 of the batch has a per-step label that is not"),
        ([[[1.0, 2.0]] * 5], [0], "index", r"has 5 time steps but sequences were prepared for at most 4"),
    ],
    ids=["ragged step", "null step", "empty", "nan", "fractional step label", "too long"],
)
def test_bad_sequences_raise_data_error_naming_column_and_row(
    seqs: list[object], labels: list[object], kind: str, message: str
) -> None:
    batch = pa.RecordBatch.from_pydict({"s": seqs, "y": labels})
    with pytest.raises(DataError, match=message):
        record_batch_to_arrays(batch, _spec(timesteps=4, label_kind=kind))


def test_column_spec_sequence_fields_are_validated_and_round_trip() -> None:
    spec = _spec(timesteps=7, label_kind="sequence_array", n_labels=1)
    assert ColumnSpec.from_dict(spec.to_dict()) == spec and spec.row_width == 21 and spec.label_width == 7 * 2
    with pytest.raises(ConfigError, match="timesteps"):
        ColumnSpec(features=("a",), feature_kind="array", n_features=2, timesteps=3)
    with pytest.raises(ConfigError, match="label_kind"):
        ColumnSpec(features=("a",), feature_kind="array", n_features=2, label="y", label_kind="sequence_index")


def test_nan_in_a_later_sequence_names_that_example_row() -> None:
    batch = pa.RecordBatch.from_pydict({"s": [[[1.0, 2.0], [3.0, 4.0]], [[5.0, float("inf")]]], "y": [0, 1]})
    with pytest.raises(DataError, match=r"column 's', row 11 of the batch has NaN or infinite features"):
        record_batch_to_arrays(batch, _spec(), row_offset=10)
