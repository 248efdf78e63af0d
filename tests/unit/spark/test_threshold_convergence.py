"""Threshold encoding converges like dense gradient sharing: W replicas in one process exchanging messages
through the library's own ``ThresholdRank`` (what each Spark rank runs), on sklearn's digits.

The epoch end does what ``Trainer.finish`` does (average the updater state; flush the residuals only with
``flush_residual``), so the replicas must stay bit-identical too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from deepspark.config import Adam, AdamW, Dense, InputType, Nesterovs, NetworkConfig, Output, Sgd, Updater
from deepspark.data import load_digits
from deepspark.nn import Network
from deepspark.spark import AdaptiveThreshold, GradientSharing
from deepspark.spark._encoding import ThresholdCodec, ThresholdRank

WORKERS, BATCH, EPOCHS = 2, 16, 4
# Tolerance: threshold's mean test accuracy over the seeds may trail dense's by at most this much, and no
# seed by more than WORST_GAP (the same equal-steps comparison as the MNIST acceptance job, on 450 test rows).
MEAN_GAP, WORST_GAP = 0.02, 0.04
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: torch's intra-op threads only add contention (25x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1347], y[:1347], x[1347:], y[1347:]


def _conf(updater: Updater, seed: int) -> NetworkConfig:
    return NetworkConfig(
        seed=seed,
        updater=updater,
        input_type=InputType.feed_forward(64),
        layers=(Dense(n_out=64, activation="relu"), Output(n_out=10)),
    )


def _batches(x: np.ndarray, y: np.ndarray, epoch: int, seed: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per step, one minibatch per worker (worker w owns rows w, w + W, ...), reshuffled every epoch."""
    steps = []
    blocks = [(x[w::WORKERS], y[w::WORKERS]) for w in range(WORKERS)]
    orders = [np.random.default_rng(seed * 1000 + epoch * 10 + w).permutation(len(b[0])) for w, b in enumerate(blocks)]
    for start in range(0, min(len(b[0]) for b in blocks), BATCH):
        steps.append(
            [
                (torch.from_numpy(bx[o[start : start + BATCH]]), torch.from_numpy(by[o[start : start + BATCH]]))
                for (bx, by), o in zip(blocks, orders, strict=True)
            ]
        )
    return steps


def _accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    out = net.output(x)
    assert isinstance(out, np.ndarray)
    return float((out.argmax(1) == y).mean())


def train_dense(conf: NetworkConfig, x: np.ndarray, y: np.ndarray) -> Network:
    """Dense gradient sharing: every step applies one updater step to the mean of the workers' gradients."""
    net = Network(conf)
    total = torch.zeros_like(net.flat.grads)
    for epoch in range(EPOCHS):
        for step in _batches(x, y, epoch, conf.seed):
            total.zero_()
            for bx, by in step:
                net.compute_gradient((bx, by, None, None), postprocess=False)
                total.add_(net.flat.grads)
            net.flat.grads.copy_(total).div_(WORKERS)
            net.postprocess_gradient()
            net.gradient_to_update()
            net.apply_update(net.flat.grads, torch.tensor(0.0), BATCH * WORKERS)
    return net


def train_threshold(master: GradientSharing, conf: NetworkConfig, x: np.ndarray, y: np.ndarray) -> Network:
    """Threshold sharing as the Spark ranks do it: each replica's own updater, ``ThresholdRank`` messages."""
    nets = [Network(conf) for _ in range(WORKERS)]
    n = nets[0].flat.n_trainable
    ranks = [
        ThresholdRank(ThresholdCodec(n), master.threshold_algorithm, master.residual_post_processor, WORKERS)
        for _ in range(WORKERS)
    ]
    applied = torch.zeros(n)
    for epoch in range(EPOCHS):
        for step in _batches(x, y, epoch, conf.seed):
            messages = []
            for net, rank, (bx, by) in zip(nets, ranks, step, strict=True):
                net.compute_gradient((bx, by, None, None))
                net.gradient_to_update()
                length, _, _ = rank.encode(net.flat.grads)
                messages.append(rank.codec.message[:length].clone())
            for net, rank in zip(nets, ranks, strict=True):
                rank.combine(messages, applied)
                net.apply_update(applied, torch.tensor(0.0), BATCH)
        flushed = torch.zeros(n)
        if master.flush_residual:
            for rank in ranks:
                flushed.add_(rank.codec.residual)
                rank.codec.residual.zero_()
        state = torch.stack([net.updater.state for net in nets]).mean(0)
        for net in nets:
            with torch.no_grad():
                net.flat.trainable.sub_(flushed)
            net.updater.state.copy_(state)
    first = nets[0].params()
    assert all(np.array_equal(first, net.params()) for net in nets[1:]), "the replicas diverged"
    return nets[0]


@pytest.mark.parametrize(
    "updater",
    [
        Adam(learning_rate=1e-3),
        AdamW(learning_rate=1e-3),
        Nesterovs(learning_rate=0.05, momentum=0.9),
        Sgd(learning_rate=0.1),
    ],
    ids=["adam", "adamw", "nesterovs", "sgd"],
)
def test_threshold_defaults_reach_dense_accuracy_at_equal_steps(updater: Updater) -> None:
    x, y, x_test, y_test = _data()
    dense, threshold = [], []
    for seed in SEEDS:
        conf = _conf(updater, seed)
        dense.append(_accuracy(train_dense(conf, x, y), x_test, y_test))
        threshold.append(_accuracy(train_threshold(GradientSharing(), conf, x, y), x_test, y_test))
    gaps = np.array(dense) - np.array(threshold)
    message = f"seeds {SEEDS}: dense {dense}, threshold {threshold} ({updater.tag}; rerun this test to reproduce)"
    assert dense[0] > 0.8, message  # the comparison means something only if dense learns
    assert gaps.mean() <= MEAN_GAP, message
    assert gaps.max() <= WORST_GAP, message


def test_adaptive_threshold_leaves_the_bitmap_warm_up_within_a_few_steps() -> None:
    # Adam's steps are about the learning rate on every element, so tau must grow ~5x from its start
    conf = _conf(Adam(learning_rate=1e-3), 0)
    net = Network(conf)
    rank = ThresholdRank(ThresholdCodec(net.flat.n_trainable), AdaptiveThreshold(), None, 1)
    x, y, _, _ = _data()
    sparsities = []
    for step in _batches(x, y, 0, 0)[:40]:
        bx, by = step[0]
        net.compute_gradient((bx, by, None, None))
        net.gradient_to_update()
        length, count, _ = rank.encode(net.flat.grads)
        sparsities.append(count / net.flat.n_trainable)
        applied = torch.zeros(net.flat.n_trainable)
        rank.combine([rank.codec.message[:length].clone()], applied)
        net.apply_update(applied, torch.tensor(0.0), BATCH)
    bitmap_steps = sum(1 for s in sparsities if s * 16 > 1)
    assert bitmap_steps <= 8, sparsities
    assert np.mean(sparsities[10:]) <= 3 * AdaptiveThreshold().max_sparsity, sparsities
