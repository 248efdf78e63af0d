"""Masked sequences through Bidirectional layers: padding never changes what a sequence's own steps produce."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.config import GRU, LSTM, Bidirectional, InputType, Layer, LossLayer, NetworkConfig
from deepspark.nn import Network


@pytest.mark.parametrize(
    "inner", [GRU(n_out=3, reset_after=False), GRU(n_out=3), LSTM(n_out=3)], ids=["gru_reset_before", "gru", "lstm"]
)
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequence", "last"])
def test_bidirectional_padded_batch_equals_each_sequence_alone(inner: Layer, return_sequences: bool, seed: int) -> None:
    layer = Bidirectional(layer=inner, return_sequences=return_sequences)
    conf = NetworkConfig(input_type=InputType.recurrent(2, None), layers=(layer, LossLayer()), seed=seed)
    net = Network(conf)
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 2, 4])
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    mask = (np.arange(5)[None, :] < lengths[:, None]).astype(np.float32)
    x[mask == 0] = 7.0  # padding garbage must not leak in
    batched = net.output(x, features_mask=mask)
    for i, n in enumerate(lengths):
        alone = net.output(x[i : i + 1, :n])
        if return_sequences:
            np.testing.assert_allclose(batched[i, :n], alone[0], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(batched[i], alone[0], rtol=1e-5, atol=1e-6)
