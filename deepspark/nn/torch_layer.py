"""Compiling ``TorchLayer`` and ``ModuleConfig``: import the factory by name, build, check and dry-run the module.

Nothing here unpickles or evaluates anything: a factory reference is split at ``:``, the left part imported
with ``importlib`` and the right part looked up attribute by attribute. The module is built twice under a
seeded RNG fork (once to compile, once from the network's generator when it initializes), so its initial
parameters depend on the config's seed only and the caller's global RNG is left untouched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from deepspark.config._spec import suggest
from deepspark.config.layers import Layer, TorchLayer
from deepspark.config.network import LayerPlan
from deepspark.errors import ConfigError
from deepspark.nn.layers import CompiledLayer, Masked

SHIP_HINT = (
    "make it importable on the driver and on every executor: pip install the package there, or ship it "
    "with spark.sparkContext.addPyFile('models.zip') (or the spark.archives / spark.submit.pyFiles settings)"
)


def import_factory(ref: str, path: str = "factory") -> Callable[..., Any]:
    """The callable a ``package.module:attribute`` reference names (``ConfigError`` naming ``path`` if none)."""
    module_name, _, attributes = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"cannot import {module_name!r} for factory {ref!r} ({e}); {SHIP_HINT}", path) from None
    except Exception as e:  # the user's module raised while importing: report it, never crash the driver
        raise ConfigError(
            f"importing {module_name!r} for factory {ref!r} raised {type(e).__name__}: {e}", path
        ) from e
    where = module_name
    for part in attributes.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(f"{where!r} has no attribute {part!r} (factory {ref!r}); {suggest(part, names)}", path)
        obj = getattr(obj, part)
        where = f"{where}.{part}"
    if not callable(obj):
        raise ConfigError(
            f"factory {ref!r} names a {type(obj).__name__}, not a function or class that returns a module", path
        )
    return cast(Callable[..., Any], obj)


def _check_module(module: nn.Module, ref: str) -> None:
    """Refuse what cannot live in flat CPU buffers: no parameters, meta or non-CPU tensors, BatchNorm(momentum=None)."""
    kind = type(module).__name__
    params = list(module.named_parameters())
    if not any(p.requires_grad for _, p in params):
        raise ConfigError(
            f"factory {ref!r} returned a {kind} without trainable parameters: there is nothing to train; "
            "return the model itself (e.g. nn.Sequential(...)), not a parameter-free wrapper",
            "factory",
        )
    for name, t in [*params, *module.named_buffers()]:
        if t.device.type == "meta":
            raise ConfigError(
                f"tensor {name!r} of the {kind} from factory {ref!r} is on the meta device (it has no values); "
                "build the module with real tensors (not under torch.device('meta')), or call "
                "module.to_empty(device='cpu') and initialize it inside the factory",
                "factory",
            )
        if t.device.type != "cpu":
            raise ConfigError(
                f"tensor {name!r} of the {kind} from factory {ref!r} is on {t.device}; deepspark computes on the "
                "CPU: build the module there (no .cuda() / .to(device) in the factory)",
                "factory",
            )
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats and sub.momentum is None:
            raise ConfigError(
                f"{name or kind!r} (factory {ref!r}) is a batch norm with momentum=None (a cumulative average "
                "driven by an integer counter that the flat buffers do not carry); give it a momentum, e.g. 0.1",
                "factory",
            )


def build_module(ref: str, kwargs: dict[str, Any], dtype: torch.dtype, seed: int) -> nn.Module:
    """Import ``ref``, call it with ``kwargs`` under an RNG seeded with ``seed``, check and cast the module."""
    factory = import_factory(ref)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            module = factory(**kwargs)
        except Exception as e:
            raise ConfigError(
                f"factory {ref!r} raised {type(e).__name__} when called with kwargs {kwargs}: {e}", "kwargs"
            ) from e
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"factory {ref!r} returned a {type(module).__name__}, not a torch.nn.Module; return the model "
            "(e.g. nn.Sequential(...)) or name its class",
            "factory",
        )
    _check_module(module, ref)
    return module.to(dtype)


def dry_run(module: nn.Module, spec: TorchLayer, in_shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Call the module on a batch of 2 zero examples (eval mode) and check the per-example output shape."""
    x = torch.zeros(2, *in_shape, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y = module(x)
    except Exception as e:
        raise ConfigError(
            f"the module from factory {spec.factory!r} fails on a batch of shape {tuple(x.shape)} "
            f"({type(e).__name__}: {e}); input_shape must be the per-example shape the module expects",
            "input_shape",
        ) from e
    finally:
        module.train(was_training)
    if not isinstance(y, Tensor):
        raise ConfigError(
            f"the module from factory {spec.factory!r} returns a {type(y).__name__}; it must return one tensor "
            "(pre-activations of shape (N, n_out))",
            "factory",
        )
    want = spec.module_output_shape()
    got = tuple(y.shape[1:])
    if y.dim() == 0 or y.shape[0] != 2 or got != want:
        field, value = ("n_out", got[0] if len(got) == 1 else list(got)) if spec.output_shape is None else (
            "output_shape", list(got))
        raise ConfigError(
            f"the module from factory {spec.factory!r} returns {tuple(y.shape)} for a batch of 2 (per example "
            f"{list(got)}) but {field} says {list(want) if field == 'output_shape' else want[0]}; "
            f"set {field}={value!r} or change the module",
            field,
        )


class CompiledTorchLayer(CompiledLayer):
    """A ``TorchLayer``: the user's module under ``module``; its parameters join the flat buffers as usual."""

    def __init__(self, plan: LayerPlan, dtype: torch.dtype) -> None:
        super().__init__(plan, dtype)
        spec = cast(TorchLayer, plan.layer)
        self.torch_spec = spec
        self.in_shape = spec.module_input_shape(plan.input_type)
        self.reshape = spec.input_shape is not None
        self.keeps_mask = plan.output_type.form == "recurrent"
        self.module = build_module(spec.factory, spec.kwargs, dtype, seed=0)
        dry_run(self.module, spec, self.in_shape, dtype)

    def run(self, x: Tensor, mask: Tensor | None) -> Masked:
        if self.reshape:
            x = x.reshape(x.shape[0], *self.in_shape)
        x = x.contiguous()  # the user's module gets the standard layout (inference convolutions leave NHWC)
        return self.module(x), mask if self.keeps_mask else None

    def weight_names(self) -> tuple[str, ...]:
        """Parameters with 2 or more dimensions are weights (regularized); vectors are biases and gains."""
        return tuple(f"module.{n}" for n, p in self.module.named_parameters() if p.dim() > 1)

    def init_params(self, scheme: str, gen: torch.Generator) -> None:
        """The module's own initialization, drawn from a seed taken from the network's generator."""
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        fresh = build_module(self.torch_spec.factory, self.torch_spec.kwargs, self.dtype, seed)
        self.module.load_state_dict(fresh.state_dict())


TORCH_BUILDERS: dict[type[Layer], type[CompiledLayer]] = {TorchLayer: CompiledTorchLayer}
