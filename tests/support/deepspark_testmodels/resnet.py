"""A small ResNet-style classifier (conv + BatchNorm + residual add) and modules that break the rules on purpose."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (the identity shortcut of ResNet)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class SmallResNet(nn.Module):
    """Stem conv + BN + max pool, ``blocks`` residual blocks, average pooling to ``pool`` x ``pool`` (1: global),
    a linear head (logits)."""

    def __init__(
        self, classes: int = 10, channels: int = 8, blocks: int = 1, in_channels: int = 1, pool: int = 1
    ) -> None:
        super().__init__()
        self.pool = pool
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.head = nn.Linear(channels * pool * pool, classes)

    def forward(self, x: Tensor) -> Tensor:
        y = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, self.pool), 1))


def small_resnet(
    classes: int = 10, channels: int = 8, blocks: int = 1, in_channels: int = 1, pool: int = 1
) -> nn.Module:
    """The factory tests name as ``deepspark_testmodels.resnet:small_resnet``."""
    return SmallResNet(classes, channels, blocks, in_channels, pool)


def mlp(n_in: int = 4, hidden: int = 8, n_out: int = 3) -> nn.Module:
    """A two-layer perceptron (fast unit tests)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def not_a_module() -> object:
    """Returns a dict: a factory mistake the config must reject."""
    return {"weights": [1.0, 2.0]}


def no_parameters() -> nn.Module:
    """A module with nothing to train."""
    return nn.ReLU()


def on_meta_device() -> nn.Module:
    """A module whose parameters have no storage."""
    with torch.device("meta"):
        return nn.Linear(4, 3)


def cumulative_batch_norm() -> nn.Module:
    """BatchNorm with momentum=None keeps its average in an integer counter that flat buffers do not carry."""
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=None))


def frozen_encoder(n_in: int = 4, n_out: int = 3) -> nn.Module:
    """A frozen first layer and a trainable head (fine-tuning)."""
    model = nn.Sequential(nn.Linear(n_in, 6), nn.Tanh(), nn.Linear(6, n_out))
    for p in model[0].parameters():
        p.requires_grad_(False)
    return model


def broken_import() -> nn.Module:  # pragma: no cover - referenced only to fail
    raise RuntimeError("this factory always fails")



class _FlatLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.view(x.shape[0], -1))  # view, not reshape: it needs a contiguous NCHW tensor


def flat_linear(n_in: int, n_out: int) -> nn.Module:
    """Flattens with ``Tensor.view``, as much user code does, then a linear layer."""
    return _FlatLinear(n_in, n_out)
