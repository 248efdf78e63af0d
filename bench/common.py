"""Shared pieces of the benchmark scripts: data loading and the LeNet-style CNN in both worlds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepspark.config import Adam, Conv2D, Dense, InputType, NetworkConfig, Output, Subsampling
from deepspark.data import load_mnist

DEFAULT_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def mnist_split(directory: Path, n_train: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNIST test set split as the issues ask: first ``n_train`` to train, the rest to test."""
    x, y = load_mnist(directory, kind="t10k", flatten=True, normalize=True)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def lenet_config(seed: int = 0, learning_rate: float = 1e-3) -> NetworkConfig:
    """LeNet-style CNN: conv 20@5x5, maxpool, conv 50@5x5, maxpool, dense 500, softmax."""
    return NetworkConfig(
        seed=seed,
        updater=Adam(learning_rate=learning_rate),
        input_type=InputType.convolutional_flat(28, 28, 1),
        layers=(
            Conv2D(n_out=20, kernel=(5, 5), activation="relu"),
            Subsampling(kernel=(2, 2), stride=(2, 2)),
            Conv2D(n_out=50, kernel=(5, 5), activation="relu"),
            Subsampling(kernel=(2, 2), stride=(2, 2)),
            Dense(n_out=500, activation="relu"),
            Output(n_out=10, activation="softmax", loss="mcxent"),
        ),
    )


def lenet_torch() -> nn.Module:
    """The same network written by hand in PyTorch (logits out)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )


def torch_fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, seed: int) -> None:
    """A plain hand-written PyTorch training loop: shuffle, forward, cross-entropy, backward, Adam step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()


def mnist_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--mnist`` (a folder with the MNIST IDX files)."""
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="folder with t10k-*-ubyte[.gz]")


def frame(spark: Any, x: np.ndarray, y: np.ndarray | None, partitions: int) -> Any:
    """An ``array<float>`` features DataFrame (+ int label), built through Arrow, cached and counted."""
    import pandas as pd

    data: dict[str, Any] = {"features": list(x.astype(np.float32))}
    if y is not None:
        data["label"] = y.astype(np.int64)
    df = spark.createDataFrame(pd.DataFrame(data)).repartition(partitions).persist()
    df.count()
    return df
