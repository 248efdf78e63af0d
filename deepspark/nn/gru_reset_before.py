"""A GRU whose reset gate acts before the recurrent product (Cho et al. 2014; Keras' ``reset_after=False``).

PyTorch's GRU only applies the reset gate after the product, so this variant runs its own time loop over
the same parameters (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``; gate order r, z, n).
``bias_hh_l0`` is unused here (the reset-before form has a single bias). Masked steps keep the previous
state and emit zeros, as packed sequences do in PyTorch's own layers.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _reverse_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's first ``lengths[i]`` steps in place of order; padding steps stay where they are."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    idx = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def gru_reset_before(
    x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, mask: Tensor | None, reverse: bool = False
) -> Tensor:
    """Run the reset-before GRU over (N, T, F) input; returns (N, T, hidden)."""
    n, t, _ = x.shape
    hidden = w_hh.shape[1]
    if mask is None:
        lengths = torch.full((n,), t, dtype=torch.int64, device=x.device)
    else:
        lengths = mask.sum(dim=1).to(torch.int64)
    if reverse:
        x = _reverse_valid(x, lengths)
    gates_x = torch.nn.functional.linear(x, w_ih, b_ih)  # (N, T, 3H): every step's input part at once
    w_hr, w_hz, w_hn = w_hh[:hidden], w_hh[hidden : 2 * hidden], w_hh[2 * hidden :]
    h = x.new_zeros(n, hidden)
    outputs = []
    for step in range(t):
        gx = gates_x[:, step]
        r = torch.sigmoid(gx[:, :hidden] + h @ w_hr.T)
        z = torch.sigmoid(gx[:, hidden : 2 * hidden] + h @ w_hz.T)
        cand = torch.tanh(gx[:, 2 * hidden :] + (r * h) @ w_hn.T)
        new = (1.0 - z) * cand + z * h
        valid = (step < lengths).to(x.dtype).unsqueeze(1)
        h = valid * new + (1.0 - valid) * h
        outputs.append(valid * new)
    y = torch.stack(outputs, dim=1)
    return _reverse_valid(y, lengths) if reverse else y
