"""What a Keras file says about training: the loss of each output and the optimizer, as deepspark names.

Only the compile settings are read (``compile_config`` in ``.keras``, ``training_config`` in ``.h5``);
nothing else is needed to score, fine-tune or serve the imported network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from deepspark.config.names import Loss
from deepspark.config.updaters import AdaGrad, Adam, AdaMax, AdamW, Nadam, Nesterovs, RmsProp, Sgd, Updater
from deepspark.errors import ConfigError
from deepspark.modelimport._convert_base import KERAS_LOSSES, snake
from deepspark.modelimport._layer_config import Notes


def _loss_name(value: Any) -> tuple[str | None, bool]:
    """(Keras loss name, from_logits) for a string or a serialized loss object."""
    if isinstance(value, str):
        return value, False
    if isinstance(value, Mapping):
        cfg = value.get("config")
        logits = bool(cfg.get("from_logits", False)) if isinstance(cfg, Mapping) else False
        cls = value.get("class_name")
        if isinstance(cls, str):
            name = cfg.get("name") if isinstance(cfg, Mapping) and isinstance(cfg.get("name"), str) else snake(cls)
            return (name if name in KERAS_LOSSES else snake(cls)), logits
    return None, False


def output_loss(
    training: Mapping[str, Any] | None, output: str, index: int, activation: str, notes: Notes
) -> Loss:
    """deepspark's loss for output ``output`` (position ``index``): the compiled Keras loss, else one that fits
    the output's activation (softmax -> mcxent, sigmoid -> xent, otherwise mse)."""
    value = training.get("loss") if training else None
    if isinstance(value, list):
        value = value[index] if index < len(value) else None
    elif isinstance(value, Mapping) and "class_name" not in value:
        value = value.get(output)
    name, logits = _loss_name(value)
    if name is not None and name in KERAS_LOSSES:
        loss = cast(Loss, KERAS_LOSSES[name])
        if logits:
            notes.add(
                f"output {output!r} was trained with from_logits=True: it emits logits, as in Keras; to fine-tune it "
                f"as a classifier give it a softmax/sigmoid activation (deepspark's {loss!r} expects probabilities)"
            )
        return loss
    guessed = cast(Loss, {"softmax": "mcxent", "sigmoid": "xent"}.get(activation, "mse"))
    if value is not None:
        notes.add(f"output {output!r}: loss {value!r} has no deepspark equivalent; using {guessed!r}")
    else:
        notes.add(f"output {output!r}: the file names no loss (model not compiled); using {guessed!r}")
    return guessed


def _lr(cfg: Mapping[str, Any], notes: Notes) -> float:
    value = cfg.get("learning_rate", cfg.get("lr", 1e-3))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    notes.add(f"learning rate {value!r} (a schedule?) is not imported; using 1e-3")
    return 1e-3


def updater(training: Mapping[str, Any] | None, notes: Notes) -> Updater:
    """The deepspark updater matching the Keras optimizer (Adam with its defaults when none is known)."""
    opt = (training or {}).get("optimizer", (training or {}).get("optimizer_config"))
    if not isinstance(opt, Mapping) or not isinstance(opt.get("config"), Mapping):
        return Adam()
    cls, cfg = str(opt.get("class_name", "")).lower(), opt["config"]
    lr = _lr(cfg, notes)

    def num(key: str, default: float) -> float:
        value = cfg.get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else default

    adam_like = {"beta1": num("beta_1", 0.9), "beta2": num("beta_2", 0.999), "epsilon": num("epsilon", 1e-7)}
    try:
        if cls == "adam":
            return Adam(learning_rate=lr, **adam_like)
        if cls == "adamw":
            return AdamW(learning_rate=lr, weight_decay=num("weight_decay", 0.004), **adam_like)
        if cls == "adamax":
            return AdaMax(learning_rate=lr, **adam_like)
        if cls == "nadam":
            return Nadam(learning_rate=lr, **adam_like)
        if cls == "sgd":
            momentum = num("momentum", 0.0)
            if momentum == 0.0:
                return Sgd(learning_rate=lr)
            if not cfg.get("nesterov", False):
                notes.add("SGD with classical momentum becomes Nesterov momentum (deepspark's Nesterovs)")
            return Nesterovs(learning_rate=lr, momentum=momentum)
        if cls == "rmsprop":
            return RmsProp(learning_rate=lr, rms_decay=num("rho", 0.9), epsilon=num("epsilon", 1e-7))
        if cls == "adagrad":
            return AdaGrad(learning_rate=lr, epsilon=num("epsilon", 1e-7))
    except ConfigError as e:
        notes.add(f"optimizer {opt.get('class_name')!r}: {e}; using Adam")
        return Adam()
    notes.add(f"optimizer {opt.get('class_name')!r} has no deepspark equivalent; using Adam")
    return Adam()
