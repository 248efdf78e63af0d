"""Arrow -> numpy decoding, binary blocks and the block layout, on hand-built record batches (no JVM)."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from deepspark.data._arrow import (
    ColumnSpec,
    Piece,
    arrays_to_block_batch,
    balanced_ranges,
    block_to_arrays,
    blocks_to_arrays,
    float_dtype,
    hash_route_keys,
    iter_slices,
    plan_pieces,
    record_batch_to_arrays,
    spark_int_hash,
)
from deepspark.errors import ConfigError, DataError

# What pyspark 4.3 sends through mapInArrow / toArrow for a pyspark.ml.linalg.VectorUDT column.
VECTOR = pa.struct(
    [
        pa.field("type", pa.int8(), nullable=False),
        ("size", pa.int32()),
        ("indices", pa.list_(pa.field("element", pa.int32(), nullable=False))),
        ("values", pa.list_(pa.field("element", pa.float64(), nullable=False))),
    ]
)


def _dense(values: list[float]) -> dict[str, Any]:
    return {"type": 1, "size": None, "indices": None, "values": values}


def _sparse(size: int, indices: list[int], values: list[float]) -> dict[str, Any]:
    return {"type": 0, "size": size, "indices": indices, "values": values}


def _spec(n: int, kind: str = "array", label_kind: str = "none", k: int | None = None, **kw: Any) -> ColumnSpec:
    label = None if label_kind == "none" else "y"
    width = {"none": 0, "index": 1, "scalar_float": 1}.get(label_kind, k or 1)
    return ColumnSpec(
        features=("f",), feature_kind=kind, n_features=n, label=label, label_kind=label_kind, n_label_values=width, **kw
    )  # type: ignore[arg-type]


def _batch(**columns: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


# --- features -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arrow_type", [pa.float32(), pa.float64(), pa.int32(), pa.int64()])
def test_record_batch_list_features_any_numeric_type_decode_to_float32_matrix(arrow_type: pa.DataType) -> None:
    rows = [[1, 2, 3], [4, 5, 6]]
    x, y, keys = record_batch_to_arrays(_batch(f=pa.array(rows, pa.list_(arrow_type))), _spec(3))
    assert x.dtype == np.float32 and x.flags.writeable
    np.testing.assert_array_equal(x, np.array(rows, np.float32))
    assert y is None and keys is None


def test_record_batch_sliced_and_fixed_size_lists_respect_offsets() -> None:
    col = pa.array([[9.0, 9.0], [1.0, 2.0], [3.0, 4.0], [9.0, 9.0]], pa.list_(pa.float32()))
    x, _, _ = record_batch_to_arrays(_batch(f=col).slice(1, 2), _spec(2), dtype="float64")
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    fixed = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))
    np.testing.assert_array_equal(record_batch_to_arrays(_batch(f=fixed), _spec(2))[0], [[1, 2], [3, 4]])


def test_record_batch_wrong_list_width_names_first_bad_row_and_length() -> None:
    col = pa.array([[1.0, 2.0], [1.0, 2.0], [1.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32()))
    with pytest.raises(DataError, match=r"column 'f', row 12 of the batch has 1 feature values; every row needs 2"):
        record_batch_to_arrays(_batch(f=col), _spec(2), row_offset=10)


def test_record_batch_null_row_and_null_element_name_the_column() -> None:
    col = pa.array([[1.0, 2.0], None], pa.list_(pa.float32()))
    with pytest.raises(DataError, match=r"column 'f', row 1 of partition 3 is null .*dropna\(subset=\['f'\]\)"):
        record_batch_to_arrays(_batch(f=col), _spec(2), where="partition 3")
    col = pa.array([[1.0, 2.0], [3.0, None]], pa.list_(pa.float32()))
    with pytest.raises(DataError, match=r"column 'f', row 1 .* null element"):
        record_batch_to_arrays(_batch(f=col), _spec(2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_record_batch_non_finite_features_raise_clean_or_impute(bad: float) -> None:
    col = pa.array([[1.0, 2.0], [3.0, 4.0], [bad, 0.0]], pa.list_(pa.float64()))
    with pytest.raises(
        DataError, match=r"column 'f', row 2 of the batch has NaN or infinite features.*clean or impute"
    ):
        record_batch_to_arrays(_batch(f=col), _spec(2))


def test_record_batch_huge_finite_float64_values_are_not_mistaken_for_inf() -> None:
    col = pa.array([[1e308, 1e308], [1e308, 1e308]], pa.list_(pa.float64()))
    x, _, _ = record_batch_to_arrays(_batch(f=col), _spec(2), dtype="float64")
    assert np.isfinite(x).all()


def test_record_batch_dense_vectors_reshape_directly() -> None:
    col = pa.array([_dense([1.0, 2.0, 3.0]), _dense([4.0, 5.0, 6.0])], VECTOR)
    x, _, _ = record_batch_to_arrays(_batch(f=col), _spec(3, "vector"))
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])


def test_record_batch_mixed_sparse_and_dense_vectors_densify_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, width = 50, 7
    expected = np.where(rng.random((n, width)) < 0.3, rng.normal(size=(n, width)), 0.0)
    rows = []
    for i in range(n):  # building the input by hand; the decoder itself has no per-row loop
        nz = np.flatnonzero(expected[i])
        rows.append(_sparse(width, nz.tolist(), expected[i, nz].tolist()) if i % 3 else _dense(expected[i].tolist()))
    x, _, _ = record_batch_to_arrays(_batch(f=pa.array(rows, VECTOR)).slice(5), _spec(width, "vector"), dtype="float64")
    np.testing.assert_array_equal(x, expected[5:])


def test_record_batch_sparse_vector_of_wrong_size_names_row_and_size() -> None:
    col = pa.array([_dense([1.0, 2.0, 3.0]), _sparse(4, [0], [1.0])], VECTOR)
    with pytest.raises(DataError, match=r"row 1 of the batch is a sparse vector of size 4; every row needs 3"):
        record_batch_to_arrays(_batch(f=col), _spec(3, "vector"))


def test_record_batch_bad_vectors_raise_data_error() -> None:
    short = pa.array([_sparse(3, [], []), _dense([1.0, 2.0])], VECTOR)
    with pytest.raises(DataError, match=r"row 1 of the batch is a dense vector of 2 feature values; every row needs 3"):
        record_batch_to_arrays(_batch(f=short), _spec(3, "vector"))
    out_of_range = pa.array([_sparse(3, [5], [1.0])], VECTOR)
    with pytest.raises(DataError, match=r"row 0 .*index out of range \[0, 3\)"):
        record_batch_to_arrays(_batch(f=out_of_range), _spec(3, "vector"))
    with pytest.raises(DataError, match=r"column 'f', row 0 of the batch is null"):
        record_batch_to_arrays(_batch(f=pa.array([None, _dense([1.0])], VECTOR)), _spec(1, "vector"))


def test_record_batch_several_numeric_columns_stack_in_spec_order() -> None:
    batch = _batch(b=pa.array([1.5, 2.5]), a=pa.array([1, 2], pa.int32()))
    spec = ColumnSpec(features=("a", "b"), feature_kind="columns", n_features=2)
    x, _, _ = record_batch_to_arrays(batch, spec)
    np.testing.assert_array_equal(x, np.array([[1, 1.5], [2, 2.5]], np.float32))
    with pytest.raises(DataError, match=r"column 'b', row 1 of the batch is null"):
        record_batch_to_arrays(_batch(a=pa.array([1, 2]), b=pa.array([1.0, None])), spec)


def test_record_batch_unsupported_types_and_missing_columns_raise() -> None:
    with pytest.raises(DataError, match=r"column 'f': Arrow type string cannot hold feature"):
        record_batch_to_arrays(_batch(f=pa.array(["a"])), _spec(1))
    with pytest.raises(DataError, match=r"column 'f' not found in the Arrow batch; available: \['g'\]"):
        record_batch_to_arrays(_batch(g=pa.array([[1.0]])), _spec(1))


# --- labels and keys ----------------------------------------------------------------------------


def test_record_batch_index_labels_become_int64_from_ints_or_whole_floats() -> None:
    f = pa.array([[0.0], [1.0], [2.0]], pa.list_(pa.float32()))
    for labels in (pa.array([0, 2, 1], pa.int32()), pa.array([0.0, 2.0, 1.0])):
        _, y, _ = record_batch_to_arrays(_batch(f=f, y=labels), _spec(1, label_kind="index"))
        assert y is not None and y.dtype == np.int64 and y.tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    ("values", "message"),
    [([0.0, 1.5], r"row 1 of the batch is 1\.5; index labels must be whole numbers"), ([1, -1], r"row 1 .* is -1")],
)
def test_record_batch_bad_index_labels_raise_data_error(values: list[float], message: str) -> None:
    batch = _batch(f=pa.array([[0.0], [1.0]], pa.list_(pa.float32())), y=pa.array(values))
    with pytest.raises(DataError, match=message):
        record_batch_to_arrays(batch, _spec(1, label_kind="index"))


def test_record_batch_array_and_float_labels_and_keys() -> None:
    f = pa.array([[0.0], [1.0]], pa.list_(pa.float32()))
    onehot = pa.array([[1, 0, 0], [0, 0, 1]], pa.list_(pa.int32()))
    _, y, keys = record_batch_to_arrays(
        _batch(f=f, y=onehot, id=pa.array(["a", "b"])), _spec(1, "array", "array", 3, key="id")
    )
    assert y is not None and y.dtype == np.float32
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 0, 1]])
    assert keys is not None and keys.tolist() == ["a", "b"]
    _, y, _ = record_batch_to_arrays(_batch(f=f, y=pa.array([0.5, -2.0])), _spec(1, label_kind="scalar_float"))
    assert y is not None and y.shape == (2, 1) and y[:, 0].tolist() == [0.5, -2.0]
    with pytest.raises(DataError, match=r"column 'y', row 0 .*NaN or infinite labels"):
        record_batch_to_arrays(_batch(f=f, y=pa.array([float("nan"), 1.0])), _spec(1, label_kind="scalar_float"))


# --- spec ---------------------------------------------------------------------------------------


def test_column_spec_round_trips_through_dict_and_pickle() -> None:
    spec = _spec(784, "vector", "index", key="id")
    assert ColumnSpec.from_dict(spec.to_dict()) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.columns == ("f", "y", "id")


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"features": ("a", "b"), "feature_kind": "array", "n_features": 2}, "features"),
        ({"features": ("a",), "feature_kind": "tensor", "n_features": 2}, "feature_kind"),
        ({"features": ("a",), "feature_kind": "array", "n_features": 0}, "n_features"),
        ({"features": ("a",), "feature_kind": "array", "n_features": 2, "label": "y"}, "label_kind"),
        (
            {
                "features": ("a",),
                "feature_kind": "array",
                "n_features": 2,
                "label": "y",
                "label_kind": "index",
                "n_label_values": 3,
            },
            "n_label_values",
        ),
    ],
)
def test_column_spec_invalid_fields_raise_config_error_naming_field(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        ColumnSpec(**fields)
    assert info.value.path == path


def test_float_dtype_accepts_float32_float64_only() -> None:
    assert float_dtype("float32") == np.float32 and float_dtype(np.float64) == np.float64
    with pytest.raises(ConfigError, match=r"dtype: expected 'float32' or 'float64', got 'int64'"):
        float_dtype("int64")


# --- blocks -------------------------------------------------------------------------------------


def test_block_batch_round_trips_features_and_labels_as_little_endian_bytes() -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([3, 1, 0, 2], np.int64)
    batch = arrays_to_block_batch({"worker": 1, "part": 0}, x, y)
    assert batch.schema.names == ["worker", "part", "n", "x", "y"]
    row = batch.to_pylist()[0]
    assert row["n"] == 4 and row["x"] == x.astype("<f4").tobytes()
    xs, ys = block_to_arrays(row["n"], row["x"], row["y"], _spec(3, label_kind="index"), "float32")
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def test_blocks_to_arrays_orders_by_part_and_concatenates() -> None:
    spec = _spec(2, label_kind="scalar_float")
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.float32).reshape(10, 1)
    cuts = [0, 3, 4, 10]
    rows = [
        arrays_to_block_batch({"worker": 0, "part": i}, x[a:b], y[a:b]).to_pylist()[0]
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    xs, ys = blocks_to_arrays(reversed(rows), spec)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    assert xs.flags.writeable
    empty_x, empty_y = blocks_to_arrays([], spec)
    assert empty_x.shape == (0, 2) and empty_y is not None and empty_y.shape == (0, 1)


def test_block_with_wrong_byte_count_raises_data_error() -> None:
    with pytest.raises(DataError, match=r"block says n=3 with 2 float32 features but holds 8 bytes"):
        block_to_arrays(3, b"\0" * 8, b"", _spec(2), "float32")


# --- layout -------------------------------------------------------------------------------------


def test_balanced_ranges_give_every_worker_n_over_w_or_one_more() -> None:
    ranges = balanced_ranges(10, 3)
    assert ranges == [(0, 3), (3, 6), (6, 10)]
    assert {b - a for a, b in balanced_ranges(1001, 7)} <= {143, 144}


def test_plan_pieces_cuts_skewed_partitions_into_exact_worker_ranges(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = {p: int(c) for p, c in enumerate(rng.integers(0, 40, size=10))}
    counts[3] = 0
    total = sum(counts.values())
    workers = 3
    blocks = [(k, a, b) for k, (a, b) in enumerate(balanced_ranges(total, workers))]
    plan = plan_pieces(counts, blocks)
    starts = dict(zip(sorted(counts), np.cumsum([0] + [counts[p] for p in sorted(counts)]).tolist(), strict=False))
    owned: dict[int, list[tuple[int, int, int]]] = {k: [] for k in range(workers)}
    for p, pieces in plan.items():
        assert [pc.start for pc in pieces] == sorted(pc.start for pc in pieces)
        assert sum(pc.stop - pc.start for pc in pieces) == counts[p]
        for pc in pieces:
            owned[pc.worker].append((pc.part, starts[p] + pc.start, starts[p] + pc.stop))
    for k, (a, b) in enumerate(balanced_ranges(total, workers)):
        runs = sorted(owned[k])
        assert [r[0] for r in runs] == list(range(len(runs)))  # parts number a worker's pieces in row order
        assert runs[0][1] == a and runs[-1][2] == b
        assert all(r[2] == s[1] for r, s in itertools.pairwise(runs))


def test_iter_slices_streams_batches_into_pieces() -> None:
    x = np.arange(30, dtype=np.float32).reshape(15, 2)
    y = np.arange(15)
    batches = [(x[a:b], y[a:b]) for a, b in [(0, 4), (4, 5), (5, 15)]]
    pieces = [Piece(0, 0, 0, 0, 3), Piece(0, 1, 1, 3, 9), Piece(1, 0, 2, 9, 15)]
    out = list(iter_slices(iter(batches), pieces))
    assert [p for p, _, _ in out] == pieces
    for piece, xs, ys in out:
        np.testing.assert_array_equal(np.concatenate(xs), x[piece.start : piece.stop])
        np.testing.assert_array_equal(np.concatenate(ys), y[piece.start : piece.stop])


def test_spark_int_hash_matches_spark_murmur3_and_routes_cover_every_partition() -> None:
    # Values of Spark's F.hash(F.col("id").cast("int")) for ids 0..3, read off pyspark 4.3.
    assert [spark_int_hash(i) for i in range(4)] == [933211791, -559580957, 1765031574, -1823081949]
    for workers in (1, 2, 3, 10, 64):
        keys = hash_route_keys(workers)
        assert sorted(spark_int_hash(k) % workers for k in keys) == list(range(workers))


# --- executor bodies of deepspark.data.dataframe, run here without Spark (partition id 0) --------


def _list_batches(x: np.ndarray, y: np.ndarray, sizes: list[int]) -> list[pa.RecordBatch]:
    cuts = np.cumsum([0, *sizes])
    col = pa.array(x.tolist(), pa.list_(pa.float32()))
    batch = _batch(f=col, y=pa.array(y))
    return [batch.slice(a, b - a) for a, b in itertools.pairwise(cuts)]


def test_emit_pieces_tags_slices_and_detects_a_changed_partition() -> None:
    from deepspark.data.dataframe import _emit_pieces, _PiecePlan

    spec = _spec(2, label_kind="index")
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) % 3
    pieces = plan_pieces({0: 10}, [(0, 0, 4), (0, 4, 8), (1, 8, 10)])
    plan = _PiecePlan(spec, "float32", ((0, 10),), tuple(pieces.items()), (11, 22))
    out = [b.to_pylist()[0] for b in _emit_pieces(plan, iter(_list_batches(x, y, [3, 7])))]
    assert [(r["worker"], r["part"], r["block"], r["route"], r["n"]) for r in out] == [
        (0, 0, 0, 11, 4),
        (0, 1, 1, 11, 4),
        (1, 0, 2, 22, 2),
    ]
    xs, ys = blocks_to_arrays([r for r in out if r["worker"] == 0], spec)
    np.testing.assert_array_equal(xs, x[:8])
    np.testing.assert_array_equal(ys, y[:8])
    changed = _PiecePlan(spec, "float32", ((0, 12),), tuple(plan_pieces({0: 12}, [(0, 0, 12)]).items()), (0,))
    with pytest.raises(DataError, match=r"input partition 0 has 10 rows now but had 12 when counted.*persist\(\)"):
        list(_emit_pieces(changed, iter(_list_batches(x, y, [10]))))


def test_emit_partition_blocks_caps_block_rows() -> None:
    from deepspark.data.dataframe import _emit_partition_blocks, _PartitionPlan

    spec = _spec(2, label_kind="index")
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    plan = _PartitionPlan(spec, "float32", 4)
    out = [b.to_pylist()[0] for b in _emit_partition_blocks(plan, iter(_list_batches(x, y, [3, 7])))]
    assert [(r["worker"], r["part"], r["n"]) for r in out] == [(0, 0, 4), (0, 1, 4), (0, 2, 2)]
    xs, ys = blocks_to_arrays(out, spec)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def test_merge_blocks_joins_pieces_of_each_block_as_bytes() -> None:
    from deepspark.data.dataframe import _merge_blocks

    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    y = np.arange(7, dtype=np.int64)
    cuts = [(0, 0, 2), (0, 2, 3), (1, 3, 6), (2, 6, 7)]  # block 0 straddles two input partitions
    rows = [
        arrays_to_block_batch({"worker": 0, "part": i, "block": blk}, x[a:b], y[a:b])
        for i, (blk, a, b) in enumerate(cuts)
    ]
    sorted_pieces = pa.Table.from_batches(rows).to_batches(max_chunksize=2)  # pieces of a block split across batches
    out = [b.to_pylist()[0] for b in _merge_blocks(iter(sorted_pieces))]
    assert [(r["batch"], r["n"]) for r in out] == [(0, 3), (1, 3), (2, 1)]
    spec = _spec(2, label_kind="index")
    decoded = [blocks_to_arrays([r], spec) for r in out]
    np.testing.assert_array_equal(np.concatenate([d[0] for d in decoded]), x)
    np.testing.assert_array_equal(np.concatenate([d[1] for d in decoded if d[1] is not None]), y)
