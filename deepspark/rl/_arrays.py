"""Named numpy arrays <-> one Arrow IPC message (a one-row table of binary columns): the rollout wire format.

What crosses between the driver and rollout workers (weights, observation statistics, trajectories,
episode logs) is numbers only; Arrow carries them with dtype and shape in the field metadata, and
reading checks both against the bytes, so a damaged message is an error, never an object.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from deepspark.errors import DataError

_DTYPES = {"float32", "float64", "int64", "int32", "bool", "uint8"}


def pack_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> bytes:
    """One Arrow IPC stream holding every array (raw little-endian bytes) and a JSON ``meta`` object."""
    fields, columns = [], []
    for name, array in arrays.items():
        arr = np.ascontiguousarray(array)
        if arr.dtype.name not in _DTYPES:
            raise DataError(f"{name}: cannot send dtype {arr.dtype}; expected one of {sorted(_DTYPES)}")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        info = json.dumps({"dtype": arr.dtype.name, "shape": list(arr.shape)})
        fields.append(pa.field(name, pa.large_binary(), metadata={"array": info}))
        columns.append(pa.array([arr.tobytes()], type=pa.large_binary()))
    schema = pa.schema(fields, metadata={"meta": json.dumps(meta or {})})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(pa.record_batch(columns, schema=schema))
    return bytes(sink.getvalue().to_pybytes())


def unpack_arrays(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and meta of ``pack_arrays`` output; malformed input raises ``DataError``."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"rollout message is not a valid Arrow stream: {e}") from e
    if table.num_rows != 1:
        raise DataError(f"rollout message: expected one row, got {table.num_rows}")
    arrays: dict[str, np.ndarray] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        try:
            info = json.loads((field.metadata or {})[b"array"])
            dtype, shape = np.dtype(info["dtype"]), tuple(int(d) for d in info["shape"])
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"rollout message: field {field.name!r} lacks valid array metadata ({e})") from e
        if dtype.name not in _DTYPES:
            raise DataError(f"rollout message: field {field.name!r} has unsupported dtype {dtype}")
        raw = column[0].as_py()
        if len(raw) != int(np.prod(shape)) * dtype.itemsize:
            raise DataError(f"rollout message: field {field.name!r} holds {len(raw)} bytes, not shape {shape} {dtype}")
        # a writable copy: torch.from_numpy on read-only memory is undefined behaviour (and warns)
        arrays[field.name] = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape).astype(dtype)
    try:
        meta = json.loads((table.schema.metadata or {}).get(b"meta", b"{}"))
    except ValueError as e:
        raise DataError(f"rollout message: invalid meta JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DataError("rollout message: meta must be a JSON object")
    return arrays, meta


__all__ = ["pack_arrays", "unpack_arrays"]
