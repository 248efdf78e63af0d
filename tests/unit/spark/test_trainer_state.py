"""The trainer state saved next to a checkpoint (gradient sharing's tau and residuals): exact round trip,
and every damaged or foreign file refused with a ``ModelFormatError`` that says how to resume without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from deepspark.errors import ModelFormatError
from deepspark.spark._trainer_state import TrainerState, load_trainer_state, save_trainer_state, state_path


def _state(seed: int, n: int = 50) -> TrainerState:
    rng = np.random.default_rng(seed)
    ranks = tuple(rng.normal(size=n).astype(np.float32) for _ in range(3))
    return TrainerState(epoch=4, scalars={"tau": 1.5e-3, "threshold_steps": 17.0}, ranks=ranks)


def test_trainer_state_save_load_round_trip_is_exact(tmp_path: Path, seed: int) -> None:
    state = _state(seed)
    path = state_path(tmp_path / "checkpoint_epoch0004.zip")
    assert path.name == "checkpoint_epoch0004.trainer.safetensors"
    save_trainer_state(state, path)
    back = load_trainer_state(path, 50, np.float32)
    assert back.epoch == 4 and dict(back.scalars) == dict(state.scalars)
    assert len(back.ranks) == 3
    for a, b in zip(back.ranks, state.ranks, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_trainer_state_without_rank_buffers_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "s.trainer.safetensors"
    save_trainer_state(TrainerState(epoch=1, scalars={"tau": 0.01}), path)
    back = load_trainer_state(path, 10, np.float32)
    assert back.ranks == () and back.scalars == {"tau": 0.01} and not back.empty


def _write(path: Path, tensors: dict[str, np.ndarray], **meta: str) -> None:
    base = {"format": "deepspark-trainer-state", "version": "1", "epoch": "2", "scalars": json.dumps({"tau": 0.1})}
    safetensors.numpy.save_file(tensors, str(path), metadata={**base, **meta})


@pytest.mark.parametrize(
    ("tensors", "meta", "expected"),
    [
        ({"ranks": np.zeros((2, 7), np.float32)}, {}, r"expected \(ranks, 50\)"),
        ({"ranks": np.zeros((2, 50), np.float64)}, {}, "float64"),
        ({"other": np.zeros((2, 50), np.float32)}, {}, "unexpected tensors"),
        ({"ranks": np.full((2, 50), np.nan, np.float32)}, {}, "NaN"),
        ({}, {"format": "something-else"}, "not a deepspark trainer state"),
        ({}, {"epoch": "-3"}, "malformed"),
        ({}, {"scalars": "[1, 2]"}, "malformed"),
        ({}, {"scalars": '{"tau": "x"}'}, "malformed"),
    ],
    ids=["width", "dtype", "member", "nan", "format", "epoch", "scalars-list", "scalars-text"],
)
def test_trainer_state_foreign_content_model_format_error(
    tmp_path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str], expected: str
) -> None:
    path = tmp_path / "x.trainer.safetensors"
    _write(path, tensors, **meta)
    with pytest.raises(ModelFormatError, match=expected) as info:
        load_trainer_state(path, 50, np.float32)
    assert f"delete {path}" in str(info.value)


def test_trainer_state_truncated_file_model_format_error(tmp_path: Path) -> None:
    path = tmp_path / "t.trainer.safetensors"
    save_trainer_state(_state(0), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ModelFormatError, match="unreadable trainer state"):
        load_trainer_state(path, 50, np.float32)
