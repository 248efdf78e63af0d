"""What a training master's ranks carry from one epoch into the next besides the network: ``TrainerState``.

Gradient sharing with threshold encoding keeps tau and a residual-clipping step count (the same on every rank)
and, on each rank, the residual: the part of its updates that has not reached tau yet. An uninterrupted fit
carries them on; a checkpoint saves them next to its model archive (``<archive>.trainer.safetensors``: one
float tensor of shape (ranks, n), scalars in the header; no pickle), and ``resume_from`` hands each rank its
residual back, so a resumed fit ends with the same parameters as one that never stopped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.errors import ModelFormatError

FORMAT = "deepspark-trainer-state"
VERSION = 1
SUFFIX = ".trainer.safetensors"
_RANKS = "ranks"


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainerState:
    """The trainer state after ``epoch`` finished epochs.

    Attributes:
        epoch: finished epochs the state belongs to (the network's ``epoch`` then).
        scalars: values every rank shares (gradient sharing: ``tau``, ``threshold_steps``).
        ranks: one flat buffer per rank, rank order (threshold encoding's residuals); empty when the ranks
            keep nothing of their own or it was not collected.
    """

    epoch: int
    scalars: Mapping[str, float] = field(default_factory=dict)
    ranks: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        sizes = {r.shape for r in self.ranks}
        if len(sizes) > 1 or any(r.ndim != 1 for r in self.ranks):
            raise ValueError(f"rank buffers must be flat and of one size, got shapes {sorted(sizes)}")

    @property
    def empty(self) -> bool:
        """Nothing to carry (parameter averaging, or a fresh fit)."""
        return not self.scalars and not self.ranks


def host_dtype(net: Any) -> np.dtype[Any]:
    """The numpy dtype of ``net``'s flat buffers, read without touching them (they may live on a GPU)."""
    return np.dtype(str(net.flat.params.dtype).removeprefix("torch."))


def state_path(archive: str | os.PathLike[str]) -> Path:
    """Where the trainer state of checkpoint ``archive`` is kept: ``<archive stem>.trainer.safetensors``."""
    p = Path(archive)
    return p.with_name(p.stem + SUFFIX)


def save_trainer_state(state: TrainerState, path: Path) -> None:
    """Write ``state`` to ``path`` atomically (a temp file renamed into place)."""
    import safetensors.numpy

    tensors = {_RANKS: np.ascontiguousarray(np.stack(state.ranks))} if state.ranks else {}
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "epoch": str(state.epoch),
        "scalars": json.dumps(dict(state.scalars)),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        safetensors.numpy.save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_trainer_state(path: Path, n: int, dtype: Any) -> TrainerState:
    """Read a trainer state written by ``save_trainer_state`` for a network of ``n`` trainable values of
    ``dtype``; anything else in the file raises ``ModelFormatError`` (nothing in it is executed or unpickled)."""
    from safetensors import safe_open

    fix = f"delete {path} to resume without it (the ranks then start with empty residuals)"
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            if meta.get("format") != FORMAT or meta.get("version") != str(VERSION):
                raise ModelFormatError(
                    f"{path}: not a deepspark trainer state of version {VERSION} (format {meta.get('format')!r}, "
                    f"version {meta.get('version')!r}); {fix}"
                )
            if keys not in ([], [_RANKS]):
                raise ModelFormatError(f"{path}: unexpected tensors {keys}, expected only {_RANKS!r}; {fix}")
            ranks: tuple[np.ndarray, ...] = ()
            if keys:
                shape = tuple(f.get_slice(_RANKS).get_shape())
                if len(shape) != 2 or shape[1] != n:
                    raise ModelFormatError(
                        f"{path}: rank buffers of shape {shape}, expected (ranks, {n}) for this network; {fix}"
                    )
                array = f.get_tensor(_RANKS)
                if array.dtype != np.dtype(dtype):
                    raise ModelFormatError(f"{path}: rank buffers are {array.dtype}, the network is {dtype}; {fix}")
                ranks = tuple(np.array(row) for row in array)
    except ModelFormatError:
        raise
    except Exception as e:  # safetensors' own errors for a truncated or damaged file
        raise ModelFormatError(f"{path}: unreadable trainer state ({e}); {fix}") from None
    try:
        epoch = int(meta.get("epoch", ""))
        scalars = json.loads(meta.get("scalars", ""))
    except ValueError:
        raise ModelFormatError(f"{path}: the header's 'epoch' or 'scalars' is malformed; {fix}") from None
    if (
        epoch < 0
        or not isinstance(scalars, dict)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scalars.values())
        or not all(math.isfinite(v) for v in scalars.values())
    ):
        raise ModelFormatError(f"{path}: the header's 'epoch' or 'scalars' is malformed; {fix}")
    if any(not np.isfinite(r).all() for r in ranks):
        raise ModelFormatError(f"{path}: the rank buffers hold NaN or infinite values; {fix}")
    return TrainerState(epoch=epoch, scalars={str(k): float(v) for k, v in scalars.items()}, ranks=ranks)


__all__ = ["TrainerState", "host_dtype", "load_trainer_state", "save_trainer_state", "state_path"]
