"""Exporting a trained ``Network`` for serving: ONNX (checked in onnxruntime) and a plain torch state dict.

Both exports read the parameters from the flat buffers and write independent copies; the network keeps
training afterwards. ONNX takes the features exactly as ``Network.output`` does (flat rows for flat and
flattened-image inputs, (N, T, F) for sequences) and returns the activated output (class probabilities
for classifiers), with a dynamic batch axis. ``export_torch`` writes safetensors (no pickle) plus, in its
metadata, what rebuilds the module: the factory reference and kwargs of a ``ModuleConfig``, or the config.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from deepspark.config.graph import GraphConfig
from deepspark.config.module import ModuleConfig
from deepspark.config.root import config_from_json
from deepspark.errors import DeepSparkError, ModelFormatError
from deepspark.nn.functional import activation_fn
from deepspark.nn.model import ModuleModel

if TYPE_CHECKING:
    from deepspark.nn.network import Network

EXTRA_HINT = "ONNX export needs the 'export' extra: pip install 'deepspark[export]' (onnx, onnxscript, onnxruntime)"
TORCH_FORMAT = "deepspark-torch-state-dict"


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` wrote: the file, its input and output names, and the check against torch."""

    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_abs_diff: float | None  # onnxruntime vs torch on a random batch; None when not verified


class _Served(nn.Module):
    """The network's model with activated outputs: what a serving stack calls."""

    def __init__(self, model: nn.Module, activations: list[str]) -> None:
        super().__init__()
        self.model = model
        self.activations = activations

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        preouts = cast(Any, self.model).forward_preouts(list(inputs), [None] * len(inputs))
        outs = tuple(activation_fn(a)(p) for a, (p, _) in zip(self.activations, preouts, strict=True))
        return outs[0] if len(outs) == 1 else outs


def _detached_copy(net: Network) -> nn.Module:
    """A copy of the model whose tensors own their storage (the flat buffer views would alias)."""
    return _detached_copy_of(net.model).eval()


def _input_specs(net: Network) -> list[tuple[str, tuple[int | None, ...]]]:
    """(name, per-example shape) of each input; None marks a variable time axis."""
    config = net.config
    if config is None:
        raise DeepSparkError(
            "export needs a network built from a config; describe your module as ModuleConfig(factory=...) "
            "instead of Network.from_module"
        )
    if isinstance(config, GraphConfig):
        return [(name, t.shape()) for name, t in zip(config.inputs, config.input_types, strict=True)]
    return [("features", config.input_type.shape())]


def _output_names(net: Network) -> list[str]:
    config = net.config
    return list(config.outputs) if isinstance(config, GraphConfig) else ["output"]


def _quiet() -> contextlib.ExitStack:
    """Silence the exporter's own chatter (warnings about its internals, progress prints, log lines)."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    stack.callback(logger.setLevel, level)
    return stack


def export_onnx(
    net: Network, path: str | Path, *, verify: bool = True, atol: float = 1e-4, opset: int | None = None
) -> OnnxExport:
    """Write ``net`` as an ONNX model (torch's ``torch.export``-based exporter) and check it in onnxruntime.

    Args:
        net: the network (built from any config).
        path: the ``.onnx`` file to write.
        verify: run the file in onnxruntime on a random batch of 3 and compare with ``net.output``.
        atol: the largest absolute difference ``verify`` accepts (``DeepSparkError`` above it).
        opset: the ONNX opset; None lets torch choose.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise DeepSparkError(f"{EXTRA_HINT} ({e})") from None
    specs = _input_specs(net)
    names = _output_names(net)
    served = _Served(_detached_copy(net), [h.activation for h in net.heads])
    batch = torch.export.Dim("batch")
    examples, dynamic = [], []
    for _, shape in specs:
        examples.append(torch.zeros(2, *[3 if d is None else d for d in shape], dtype=net.dtype))
        axes: dict[int, Any] = {0: batch}
        if any(d is None for d in shape):
            axes[1] = torch.export.Dim("steps")
        dynamic.append(axes)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet():
            program = torch.onnx.export(
                served,
                tuple(examples),
                None,
                dynamo=True,
                input_names=[n for n, _ in specs],
                output_names=names,
                dynamic_shapes=(tuple(dynamic),),  # one entry: the *inputs parameter
                opset_version=opset,
                verbose=False,
            )
            if program is None:  # pragma: no cover - the dynamo exporter always returns its program
                raise DeepSparkError("torch.onnx.export returned no program")
            program.save(str(target))
    except DeepSparkError:
        raise
    except Exception as e:
        raise DeepSparkError(f"ONNX export failed: {type(e).__name__}: {e}") from e
    diff = _verify(net, target, specs, atol) if verify else None
    return OnnxExport(target, tuple(n for n, _ in specs), tuple(names), diff)


def _verify(net: Network, path: Path, specs: list[tuple[str, tuple[int | None, ...]]], atol: float) -> float:
    """Max abs difference between onnxruntime and ``net.output`` on 3 random examples."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise DeepSparkError(f"{EXTRA_HINT} ({e}); or pass verify=False") from None
    gen = np.random.default_rng(0)
    feeds = {n: gen.standard_normal((3, *[4 if d is None else d for d in shape])).astype(np.float32)
             for n, shape in specs}
    if net.dtype == torch.float64:
        feeds = {k: v.astype(np.float64) for k, v in feeds.items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    want = net.output(list(feeds.values()) if len(feeds) > 1 else next(iter(feeds.values())))
    wants = want if isinstance(want, list) else [want]
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, wants, strict=True))
    if not diff <= atol:
        raise DeepSparkError(
            f"the ONNX model at {path} differs from the network by {diff:.3g} (> atol {atol:g}) in onnxruntime; "
            "an operator is exported differently: please report it with the network's summary()"
        )
    return diff


def export_torch(net: Network, path: str | Path) -> Path:
    """Write the model's ``state_dict`` as safetensors, with what rebuilds the module in its metadata.

    For a ``ModuleConfig`` network the keys are your module's own (``factory(**kwargs).load_state_dict``
    accepts them) and the metadata holds ``factory``, ``kwargs`` and ``input_shape``; for built-in layers it
    holds the config JSON. ``load_torch(path)`` does the rebuilding.
    """
    from safetensors.torch import save_file

    config = net.config
    if config is None:
        raise DeepSparkError(
            "export_torch needs a network built from a config; a Network.from_module network already is your module"
        )
    module = _plain_module(net)
    tensors = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    metadata = {"format": TORCH_FORMAT, "config": config.to_json(indent=None)}
    if isinstance(config, ModuleConfig):
        metadata.update(
            factory=config.factory, kwargs=json.dumps(config.kwargs), input_shape=json.dumps(list(config.input_shape))
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata=metadata)
    return target


def load_torch(path: str | Path) -> nn.Module:
    """Rebuild the module ``export_torch`` wrote: import the factory by name (or compile the config), load the tensors.

    Example:
        >>> model = load_torch("model.safetensors").eval()              # doctest: +SKIP
        >>> logits = model(torch.from_numpy(x).reshape(-1, 1, 28, 28))   # doctest: +SKIP
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError for damaged headers
        raise ModelFormatError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    if metadata.get("format") != TORCH_FORMAT or "config" not in metadata:
        raise ModelFormatError(f"{path}: not written by export_torch (no {TORCH_FORMAT!r} metadata)")
    from deepspark.nn.network import Network

    net = Network(config_from_json(metadata["config"]))  # type: ignore[arg-type]
    module = _detached_copy_of(_plain_module(net))
    try:
        module.load_state_dict(tensors)
    except RuntimeError as e:
        raise ModelFormatError(f"{path}: the tensors do not fit the module the metadata describes: {e}") from None
    return module.eval()


def _plain_module(net: Network) -> nn.Module:
    """The user's own module for a ``ModuleConfig`` network, the compiled model otherwise."""
    return cast(ModuleModel, net.model).module if isinstance(net.config, ModuleConfig) else net.model


def _detached_copy_of(module: nn.Module) -> nn.Module:
    """A deep copy whose tensors own their storage (free of the network's flat buffers)."""
    out = copy.deepcopy(module)
    with torch.no_grad():
        for p in out.parameters():
            p.data = p.data.clone()
            p.grad = None
        for sub in out.modules():
            for key, buf in list(sub._buffers.items()):
                if buf is not None:
                    sub._buffers[key] = buf.clone()
    return out
