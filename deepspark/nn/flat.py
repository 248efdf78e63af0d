"""One contiguous buffer for all parameters and one for all gradients (DL4J's flattened parameters).

Every parameter becomes a view into ``params`` and every gradient a view into ``grads``, so averaging,
broadcasting, encoding and saving are single-buffer operations and nothing is re-allocated per step.
Floating-point buffers (batch-norm running statistics) and frozen parameters (``requires_grad=False``) follow
the trainable values in ``params``: they travel and average with the model but the updater never touches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Segment:
    """A named slice of the flat parameter buffer."""

    name: str
    offset: int
    numel: int
    shape: tuple[int, ...]
    trainable: bool


class FlatBuffers:
    """Binds a module's parameters and gradients to two flat buffers (see module docstring)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        frozen = [(n, p) for n, p in module.named_parameters() if not p.requires_grad and p.is_floating_point()]
        buffers = [(n, b) for n, b in module.named_buffers() if b.is_floating_point()]
        self.n_trainable = sum(p.numel() for _, p in params)
        n_total = self.n_trainable + sum(t.numel() for _, t in [*frozen, *buffers])
        self.params = torch.zeros(n_total, dtype=dtype, device=device)
        self.grads = torch.zeros(self.n_trainable, dtype=dtype, device=device)
        self.segments: list[Segment] = []
        offset = 0
        with torch.no_grad():
            for name, p in params:
                n = p.numel()
                view = self.params[offset : offset + n].view_as(p)
                view.copy_(p.data)
                p.data = view
                p.grad = self.grads[offset : offset + n].view_as(p)
                self.segments.append(Segment(name, offset, n, tuple(p.shape), True))
                offset += n
            for name, p in frozen:  # frozen parameters (fine-tuning) travel and save, but are never updated
                n = p.numel()
                view = self.params[offset : offset + n].view_as(p)
                view.copy_(p.data)
                p.data = view
                self.segments.append(Segment(name, offset, n, tuple(p.shape), False))
                offset += n
            for name, b in buffers:
                n = b.numel()
                view = self.params[offset : offset + n].view_as(b)
                view.copy_(b)
                owner_name, _, leaf = name.rpartition(".")
                owner = module.get_submodule(owner_name) if owner_name else module
                owner._buffers[leaf] = view
                self.segments.append(Segment(name, offset, n, tuple(b.shape), False))
                offset += n
        for sub in module.modules():  # RNN modules cache their weight list; refresh it after rebinding
            if isinstance(sub, nn.RNNBase):
                sub._init_flat_weights()

    @property
    def trainable(self) -> Tensor:
        """The trainable prefix of ``params`` (what the updater steps)."""
        return self.params[: self.n_trainable]

    def contains(self, t: Tensor) -> bool:
        """Whether ``t``'s storage lies inside the flat parameter or gradient buffer."""
        for flat in (self.params, self.grads):
            start = flat.data_ptr()
            end = start + flat.numel() * flat.element_size()
            if start <= t.data_ptr() and t.data_ptr() + t.numel() * t.element_size() <= end:
                return True
        return False
