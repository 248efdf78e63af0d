"""Dense gradient sharing's buckets: contiguous slices that tile the flat gradient, cut from its end."""

from __future__ import annotations

import itertools

import pytest

from deepspark.config import Dense, InputType, NetworkConfig, Output
from deepspark.nn import Network
from deepspark.spark._sharing_trainer import GradientBuckets


@pytest.mark.parametrize("bucket_bytes", [1, 4096, 1 << 20, 1 << 30])
def test_buckets_tile_the_gradient_from_the_end(monkeypatch: pytest.MonkeyPatch, bucket_bytes: int) -> None:
    monkeypatch.setattr(GradientBuckets, "BUCKET_BYTES", bucket_bytes)
    net = Network(
        NetworkConfig(
            input_type=InputType.feed_forward(30),
            layers=(Dense(n_out=40), Dense(n_out=20), Output(n_out=3)),
        )
    )
    buckets = GradientBuckets(net)
    try:
        slices = buckets.slices
        assert slices[0][1] == net.flat.n_trainable and slices[-1][0] == 0
        assert all(a[0] == b[1] for a, b in itertools.pairwise(slices))  # contiguous, descending
        assert sum(buckets.sizes) == 6  # every weight and bias belongs to exactly one bucket
        if bucket_bytes == 1:
            assert len(slices) == 6  # one parameter per bucket
        if bucket_bytes == 1 << 30:
            assert slices == [(0, net.flat.n_trainable)]
    finally:
        buckets.remove()
    assert buckets.handles == []
