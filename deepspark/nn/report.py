"""Human-readable model reports: the layer summary table and the memory estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from deepspark.config.graph import GraphConfig

if TYPE_CHECKING:
    from deepspark.config.graph import VertexPlan
    from deepspark.nn.network import Network


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _layer_param_counts(net: Network) -> dict[int, int]:
    counts: dict[int, int] = {}
    for seg in net.flat.segments:
        layer = net.roles[seg.name].layer
        counts[layer] = counts.get(layer, 0) + seg.numel
    return counts


def summary(net: Network) -> str:
    """Text table: index, name, type, input -> output type, parameters; totals underneath."""
    counts = _layer_param_counts(net)
    rows = [("#", "name", "type", "input -> output", "params")]
    if net.config is None:
        for i, (name, module) in enumerate(net.model.named_children()):
            rows.append((str(i), name, type(module).__name__, "?", str(sum(p.numel() for p in module.parameters()))))
    elif isinstance(net.config, GraphConfig):
        rows += [_graph_row(p, counts) for p in net.config.plan()]
    else:
        for plan in net.config.plan():
            shapes = f"{plan.input_type.describe()} -> {plan.output_type.describe()}"
            if plan.preprocessor:
                shapes = f"[{plan.preprocessor}] {shapes}"
            rows.append((str(plan.index), plan.name, type(plan.layer).__name__, shapes,
                         f"{counts.get(plan.index, 0):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) if i != 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    rule = "-" * len(lines[0])
    lines.insert(1, rule)
    lines.append(rule)
    lines.append(f"total params: {net.num_params():,} (trainable {net.flat.n_trainable:,}); "
                 f"updater state: {net.updater.state.numel():,} values; dtype {str(net.dtype).replace('torch.', '')}")
    return "\n".join(lines)


def _graph_row(p: VertexPlan, counts: dict[int, int]) -> tuple[str, str, str, str, str]:
    """One summary row per vertex in run order: layer index ("-" for other vertices), sources and types."""
    sources = " + ".join(f"{s} {t.describe()}" for s, t in zip(p.vertex.inputs, p.input_types, strict=True))
    shapes = f"{sources} -> {p.output_type.describe()}"
    if p.layer is None:
        return ("-", p.name, type(p.vertex).__name__, shapes, "0")
    if p.layer.preprocessor:
        shapes = f"[{p.layer.preprocessor}] {shapes}"
    index = p.layer.index
    return (str(index), p.name, type(p.layer.layer).__name__, shapes, f"{counts.get(index, 0):,}")


@dataclass(frozen=True)
class MemoryReport:
    """Estimated training memory at one batch size, in bytes, on the network's device.

    ``activations`` lists, per layer, what the forward pass keeps for the backward pass: the layer's
    output, plus its pre-activation when the activation is not the identity, plus pooling indices
    (2-byte values under bf16/fp16 mixed precision). ``device`` is where it all lives and ``available``
    what that device can still hand out (``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` on the
    CPU; None when unknown).
    """

    batch_size: int
    params: int
    gradients: int
    updater_state: int
    input: int
    activations: tuple[tuple[str, int], ...]
    device: str = "cpu"
    available: int | None = None

    @property
    def fits(self) -> bool | None:
        """Whether ``total`` fits in ``available`` (None when the device's free memory is unknown)."""
        return None if self.available is None else self.total <= self.available

    def warning(self) -> str | None:
        """A message saying the fit would not fit on the device, with what to change; None when it fits."""
        if self.fits is not False:
            return None
        return (
            f"training at batch size {self.batch_size} needs about {_human(self.total)} on {self.device} but it has "
            f"{_human(self.available or 0)} free: lower batch_size (activations: {_human(self.activation_total)}), "
            "use precision='bf16' or 'fp16' on a GPU, or a device with more memory"
        )

    @property
    def activation_total(self) -> int:
        """Sum of per-layer activation bytes."""
        return sum(b for _, b in self.activations)

    @property
    def total(self) -> int:
        """Everything alive at the peak of a training step."""
        return self.params + self.gradients + self.updater_state + self.input + self.activation_total

    def __str__(self) -> str:
        lines = [f"memory estimate at batch size {self.batch_size}:",
                 f"  parameters      {_human(self.params):>12}",
                 f"  gradients       {_human(self.gradients):>12}",
                 f"  updater state   {_human(self.updater_state):>12}",
                 f"  input batch     {_human(self.input):>12}",
                 f"  activations     {_human(self.activation_total):>12}"]
        lines += [f"    {name:<14}{_human(b):>12}" for name, b in self.activations]
        lines.append(f"  total           {_human(self.total):>12}")
        if self.available is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(f"  {self.device} free {_human(self.available):>12}  ({verdict})")
        return "\n".join(lines)


def memory_report(net: Network, batch_size: int) -> MemoryReport:
    """Estimate training memory of a config-built network from its inferred shapes."""
    item = net.flat.params.element_size()
    act_item = 2 if net.mixed.enabled else item  # autocast keeps bf16/fp16 activations for backward
    acts: list[tuple[str, int]] = []
    input_bytes = 0
    if net.config is not None:
        in_types = net.config.input_types if isinstance(net.config, GraphConfig) else (net.config.input_type,)
        input_bytes = sum(t.flat_size() * (t.timesteps or 1) for t in in_types) * batch_size * item
        for plan in net.config.layer_plans() if isinstance(net.config, GraphConfig) else net.config.plan():
            out = plan.output_type
            per_example = out.flat_size() * (out.timesteps or 1)
            factor = 1.0
            activation = getattr(plan.layer, "activation", "identity")
            if activation != "identity":
                factor += 1.0
            if getattr(plan.layer, "pooling", None) == "max":
                factor += 8 / act_item  # int64 argmax indices kept for the backward pass
            if plan.layer.dropout > 0:
                factor += 1.0
            acts.append((plan.name, int(per_example * batch_size * act_item * factor)))
    return MemoryReport(
        batch_size=batch_size,
        params=net.flat.params.numel() * item,
        gradients=net.flat.grads.numel() * item,
        updater_state=net.updater.state.numel() * item,
        input=input_bytes,
        activations=tuple(acts),
        device=str(net.device),
        available=device_available(net.device),
    )


def device_available(device: torch.device) -> int | None:
    """Bytes ``device`` can still hand out: free CUDA memory, or the host's available memory for the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        from deepspark.nn.counting import available_memory

        return available_memory()
    return None

