"""DataSet validation, shuffling, splitting and batching; train_test_split (plain and stratified)."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.data import DataSet, train_test_split
from deepspark.errors import ConfigError, DataError


def _ds(n: int = 10) -> DataSet:
    return DataSet(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


def test_dataset_mismatched_lengths_raises_data_error_naming_both() -> None:
    with pytest.raises(DataError, match=r"labels has 3 rows but features has 5 rows"):
        DataSet(np.zeros((5, 2)), np.zeros(3))


def test_dataset_mask_with_wrong_length_raises_data_error() -> None:
    with pytest.raises(DataError, match=r"features_mask has 4 rows but features has 5"):
        DataSet(np.zeros((5, 2)), None, features_mask=np.ones((4, 2)))


def test_dataset_non_array_features_raises_data_error() -> None:
    with pytest.raises(DataError, match=r"np\.asarray"):
        DataSet([[1.0, 2.0]])  # type: ignore[arg-type]


def test_dataset_shuffle_same_seed_same_permutation_original_untouched(seed: int) -> None:
    ds = _ds(50)
    a, b = ds.shuffle(seed), ds.shuffle(seed)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(np.sort(np.asarray(a.labels)), np.arange(50))
    np.testing.assert_array_equal(a.features[:, 0] / 2, a.labels)  # rows stay aligned
    np.testing.assert_array_equal(ds.labels, np.arange(50))
    assert not np.array_equal(np.asarray(a.labels), np.asarray(ds.shuffle(seed + 1).labels))


def test_dataset_split_fraction_gives_disjoint_train_and_test(seed: int) -> None:
    train, test = _ds(10).split(0.7, seed=seed)
    assert (train.num_examples, test.num_examples) == (7, 3)
    together = np.concatenate([np.asarray(train.labels), np.asarray(test.labels)])
    np.testing.assert_array_equal(np.sort(together), np.arange(10))


def test_dataset_split_without_seed_keeps_order() -> None:
    train, test = _ds(10).split(0.8, seed=None)
    np.testing.assert_array_equal(train.labels, np.arange(8))
    np.testing.assert_array_equal(test.labels, [8, 9])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 2])
def test_dataset_split_fraction_out_of_range_raises_config_error(fraction: float) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        _ds().split(fraction)


def test_dataset_split_leaving_empty_part_raises_data_error() -> None:
    with pytest.raises(DataError, match="empty"):
        _ds(3).split(0.9)


def test_dataset_batches_last_batch_short_unless_drop_last() -> None:
    assert [b.num_examples for b in _ds(10).batches(4)] == [4, 4, 2]
    assert [b.num_examples for b in _ds(10).batches(4, drop_last=True)] == [4, 4]
    first = next(_ds(10).batches(4))
    np.testing.assert_array_equal(first.labels, [0, 1, 2, 3])


def test_dataset_batches_zero_size_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        list(_ds().batches(0))


def test_dataset_concat_joins_parts_and_rejects_mixed_labels() -> None:
    parts = list(_ds(7).batches(3))
    merged = DataSet.concat(parts)
    np.testing.assert_array_equal(merged.labels, np.arange(7))
    with pytest.raises(DataError, match="labels is None"):
        DataSet.concat([_ds(2), DataSet(np.zeros((2, 2)))])


def test_train_test_split_sizes_and_alignment(seed: int) -> None:
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_fraction=0.2, seed=seed)
    assert (x_tr.shape, x_te.shape, y_tr.shape, y_te.shape) == ((40, 2), (10, 2), (40,), (10,))
    np.testing.assert_array_equal(x_tr[:, 0] // 2, y_tr)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), np.arange(50))


def test_train_test_split_stratified_keeps_class_proportions(seed: int) -> None:
    y = np.repeat([0, 1, 2], [50, 30, 20])
    x = np.arange(100)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_fraction=0.2, seed=seed, stratify=True)
    np.testing.assert_array_equal(np.bincount(y_te), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(y_tr), [40, 24, 16])
    np.testing.assert_array_equal(y[x_te[:, 0]], y_te)
    assert len(set(x_tr[:, 0]) & set(x_te[:, 0])) == 0


def test_train_test_split_stratified_uneven_counts_hits_exact_test_size(seed: int) -> None:
    y = np.repeat(["a", "b", "c"], [7, 5, 3])
    x_tr, x_te, _, y_te = train_test_split(np.zeros((15, 1)), y, test_fraction=0.4, seed=seed, stratify=True)
    assert x_te.shape[0] == 6 and x_tr.shape[0] == 9
    counts = {c: int((y_te == c).sum()) for c in "abc"}
    assert all(counts[c] >= 1 for c in "abc"), counts


def test_train_test_split_mismatched_lengths_raises_data_error() -> None:
    with pytest.raises(DataError, match=r"x has 4 rows but y has 3 rows"):
        train_test_split(np.zeros((4, 1)), np.zeros(3))
