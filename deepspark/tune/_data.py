"""The search's training and validation data as ONE Arrow IPC buffer: packed on the driver, decoded on executors.

The buffer travels to each executor once per ``Search.fit`` (a Spark broadcast is fetched once per executor
and kept on its disk); each Python worker decodes it once into numpy and keeps it in a module-level cache
keyed by the data id, so trials and rungs that land on the same worker reuse it (``spark.python.worker.reuse``,
on by default, keeps the workers alive across tasks). No pickle: features are a fixed-size-list float column,
labels an int64 (class index) or fixed-size-list float column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from deepspark.errors import DataError


@dataclass(frozen=True, slots=True)
class TrialData:
    """Decoded arrays every trial trains and scores on."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def _column(values: np.ndarray, what: str) -> pa.Array:
    if values.ndim == 1:
        return pa.array(values)
    if values.ndim != 2:
        raise DataError(f"{what}: expected a 1-D or 2-D array, got shape {values.shape}")
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def pack(data: TrialData) -> bytes:
    """One Arrow IPC stream: the training rows, then the validation rows (counts in the schema metadata)."""
    if data.x_train.shape[1:] != data.x_val.shape[1:]:
        raise DataError(
            f"training rows have {data.x_train.shape[1:]} features but validation rows {data.x_val.shape[1:]}; "
            "use the same columns for both DataFrames"
        )
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    batch = pa.record_batch([_column(x, "features"), _column(y, "labels")], names=["x", "y"])
    meta = {b"n_train": str(len(data.x_train)).encode(), b"n_val": str(len(data.x_val)).encode()}
    batch = batch.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _numpy(col: pa.Array, n: int) -> np.ndarray:
    if isinstance(col, pa.FixedSizeListArray):
        width = col.type.list_size
        return np.array(col.flatten().to_numpy(zero_copy_only=False)).reshape(n, width)
    return np.array(col.to_numpy(zero_copy_only=False))


def unpack(buffer: bytes) -> TrialData:
    """Decode ``pack``'s buffer into writable numpy arrays (one copy, once per Python worker)."""
    reader = pa.ipc.open_stream(pa.py_buffer(buffer))
    table = reader.read_all()
    meta = table.schema.metadata or {}
    n_train, n_val = int(meta[b"n_train"]), int(meta[b"n_val"])
    x = _numpy(table.column("x").combine_chunks(), n_train + n_val)
    y = _numpy(table.column("y").combine_chunks(), n_train + n_val)
    return TrialData(x_train=x[:n_train], y_train=y[:n_train], x_val=x[n_train:], y_val=y[n_train:])
