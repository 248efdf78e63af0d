"""``Network``: a compiled config (or a wrapped torch module) that trains, predicts and evaluates on one machine.

All parameters live in one flat buffer, all gradients in another, the updater state in a third
(``deepspark.nn.flat``), so the Spark training masters move a model as three float arrays plus JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from deepspark.config.graph import GraphConfig
from deepspark.config.layers import Dropout, Embedding, EmbeddingSequence, TorchLayer
from deepspark.config.module import ModuleConfig
from deepspark.config.network import NetworkConfig
from deepspark.errors import ConfigError, DataError, DeepSparkError, TrainingDivergedError
from deepspark.nn.callbacks import Callback
from deepspark.nn.device import check_precision, resolve_device
from deepspark.nn.fit_session import FitSession, OnDivergence, local_validator, validation_names
from deepspark.nn.flat import FlatBuffers
from deepspark.nn.functional import CLASSIFICATION_LOSSES, activation_fn, mean_loss, per_example_loss
from deepspark.nn.graph_model import GraphModel
from deepspark.nn.history import History
from deepspark.nn.inference_batch import checked_batch_size, inference_batch_size
from deepspark.nn.inputs import (
    check_embedding_indices,
    features_to_tensor,
    labels_to_tensor,
    mask_to_tensor,
    to_dtype_finite,
)
from deepspark.nn.listeners import IterationInfo, TrainingListener
from deepspark.nn.model import TORCH_DTYPES, Head, ModuleModel, ParamRole, SequentialModel
from deepspark.nn.precision import MixedPrecision
from deepspark.nn.regularization import GradientPostProcessor
from deepspark.nn.updaters import FlatUpdater, make_updater

if TYPE_CHECKING:
    from deepspark.config.updaters import Updater
    from deepspark.eval import Evaluation, RegressionEvaluation

MODELS: dict[type, Any] = {NetworkConfig: SequentialModel, GraphConfig: GraphModel, ModuleConfig: ModuleModel}
"""The torch module each root config compiles to (every one speaks the protocol ``Network`` trains through)."""

Slot = Tensor | tuple[Tensor | None, ...]  # one tensor, or (graphs) one per graph input / output
Batch = tuple[Slot, Slot | None, Slot | None, Slot | None]  # features, labels, features mask, labels mask


def seed_step_rng(seed: int) -> None:
    """Seed the generators a training step draws from (dropout masks, a module's own randomness).

    Not ``torch.manual_seed``: on a build without an initialised accelerator every call queues a lazy CUDA, XPU
    and MTIA seeding together with a formatted stack trace, about 3 ms per step and a queue that never shrinks.
    The CPU generator gets the same state either way, so results do not change.
    """
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.manual_seed_all(seed)


class Network:
    """A trainable network. Build it from a ``NetworkConfig`` or ``GraphConfig``, or wrap a module with ``from_module``.

    A graph with several inputs takes a list of feature arrays (``inputs`` order) and, with several outputs,
    a list of label arrays (``outputs`` order); its loss is the sum of the outputs' mean losses, ``output``
    returns one array per output, and ``evaluate``/``evaluate_regression`` score the first output.
    Iterators may yield objects whose ``features``/``labels`` attributes are such lists.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``) is where the flat buffers, the updater state
    and every minibatch live; inputs and outputs stay numpy arrays on the host, and archives do not depend on
    it. The config's ``precision`` (``bf16``/``fp16``) runs the forward pass under ``torch.autocast``.

    Example:
        >>> conf = NetworkConfig(input_type=InputType.feed_forward(64),
        ...                      layers=(Dense(n_out=32, activation="relu"), Output(n_out=10)))
        >>> net = Network(conf)
        >>> net.fit(x_train, y_train, epochs=5, batch_size=32)      # doctest: +SKIP
        >>> print(net.evaluate(x_test, y_test).stats())              # doctest: +SKIP
    """

    def __init__(self, config: NetworkConfig | GraphConfig | ModuleConfig, *, device: str = "cpu") -> None:
        compile_model = MODELS.get(type(config))
        if compile_model is None:
            hint = ""
            if isinstance(config, nn.Module):
                hint = (
                    "; for your own module pass ModuleConfig(factory='package.module:function', ...) (saves, "
                    "loads and trains on Spark), or Network.from_module(module, ...) for this process only"
                )
            raise ConfigError(f"Network needs a NetworkConfig, GraphConfig or ModuleConfig, got {type(config).__name__}"
                              f"{hint}")
        self.config: NetworkConfig | GraphConfig | ModuleConfig | None = config
        dtype = TORCH_DTYPES[config.dtype]
        where = resolve_device(device)  # before any allocation: a device that is not there fails here
        check_precision(config.precision, where)
        if not isinstance(config, ModuleConfig):
            from deepspark.nn.counting import check_memory

            check_memory(config)  # shapes only, on the meta device: refuse before allocating
        model = compile_model(config)
        model.init_params(config.weight_init, torch.Generator().manual_seed(config.seed))
        self._setup(model, model.heads, model.param_roles(), config.updater, dtype, config.seed, where)
        self.mixed = MixedPrecision(config.precision, where.type)
        self.post = GradientPostProcessor.from_config(config, self.flat, self.roles)
        first = config.layers[0]
        self._vocab: int | None = first.vocab_size if isinstance(first, (Embedding, EmbeddingSequence)) else None
        if isinstance(model, GraphModel):
            self._vocab = None
            self._input_vocab[:] = model.input_vocab
        self._stochastic = any(
            layer.dropout > 0 or (isinstance(layer, Dropout) and layer.rate > 0) or isinstance(layer, TorchLayer)
            for layer in config.layers
        )

    def _setup(
        self,
        model: SequentialModel | GraphModel | _ModuleModel,
        heads: list[Head],
        roles: dict[str, ParamRole],
        updater: Updater,
        dtype: torch.dtype,
        seed: int,
        device: torch.device,
    ) -> None:
        if device.type != "cpu":
            model.to(device)  # integer buffers too; the floating-point ones move into the flat buffer next
        self.model: SequentialModel | GraphModel | _ModuleModel = model
        self.heads = heads
        self.roles = roles
        self.dtype = dtype
        self.seed = seed
        self.device = device
        self.mixed = MixedPrecision("fp32", device.type)
        self.step_skipped = False  # fp16: the last compute_gradient overflowed (its gradient is zero)
        self.flat = FlatBuffers(model, dtype, device)
        self.updater: FlatUpdater = make_updater(updater, self.flat.n_trainable, dtype, device)
        self.iteration = 0
        self.epoch = 0
        self.listeners: list[TrainingListener] = []
        self.normalizer: Any = None
        self.labels: tuple[str, ...] | None = None  # class names by index (e.g. image folders), saved in the archive
        self.last_score: Tensor | None = None
        self._vocab = None
        self._input_vocab: list[int | None] = []  # graphs: vocab_size of the embeddings each graph input feeds, or None
        self._stochastic = True
        self._inference_rows: int | None = None  # inference_batch_size, worked out on first use

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        loss: str,
        updater: Updater | None = None,
        activation: str | None = None,
        n_out: int,
        seed: int = 0,
        device: str = "cpu",
    ) -> Network:
        """Wrap a user's ``torch.nn.Module`` (the escape hatch): flat buffers, updaters, fit/evaluate all apply.

        The module maps a feature batch to pre-activations (logits for classifiers); ``activation``
        defaults to softmax for ``mcxent``, sigmoid for ``xent``, identity otherwise. Such a network lives in
        this process only: it has no config, so it cannot be saved as an archive or shipped to Spark
        executors. For that, describe the module by its factory: ``Network(ModuleConfig(factory=
        "package.module:function", kwargs=..., input_shape=..., n_out=..., loss=...))``.
        """
        from deepspark.config.names import LOSSES
        from deepspark.config.updaters import Adam

        if loss not in LOSSES:
            raise DeepSparkError(f"loss: unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        act = activation or {"mcxent": "softmax", "negativeloglikelihood": "softmax", "xent": "sigmoid"}.get(
            loss, "identity"
        )
        net = cls.__new__(cls)
        net.config = None
        params = list(module.parameters())
        dtype = params[0].dtype if params else torch.float32
        wrapped = _ModuleModel(module)
        roles = {name: ParamRole(0, name.split(".")[0], p.dim() > 1) for name, p in module.named_parameters()}
        net._setup(wrapped, [Head(loss, act, n_out, False)], roles, updater or Adam(), dtype, seed,
                   resolve_device(device))
        net.post = GradientPostProcessor(net.flat, [], [])
        return net

    # ----------------------------------------------------------------- parameters and state

    def num_params(self) -> int:
        """Number of values in the flat parameter buffer (trainable values plus running statistics)."""
        return int(self.flat.params.numel())

    def params(self) -> np.ndarray:
        """A copy of the flat parameter buffer."""
        return np.array(self.flat.params.detach().cpu().numpy(), copy=True)

    def set_params(self, flat: np.ndarray | Tensor) -> None:
        """Overwrite all parameters from a flat buffer of ``num_params()`` values (views stay bound)."""
        self._copy_into(self.flat.params, flat, "params")

    def updater_state(self) -> np.ndarray:
        """A copy of the flat updater state (moments, accumulators...)."""
        return np.array(self.updater.state.detach().cpu().numpy(), copy=True)

    def set_updater_state(self, flat: np.ndarray | Tensor) -> None:
        """Overwrite the updater state from a flat buffer of matching length."""
        self._copy_into(self.updater.state, flat, "updater state")

    @staticmethod
    def _copy_into(target: Tensor, flat: np.ndarray | Tensor, what: str) -> None:
        if isinstance(flat, Tensor):
            src = flat.detach()
        else:
            arr = np.asarray(flat)
            if arr.dtype.kind != "f":
                raise DataError(f"{what}: expected floating-point values, got dtype {arr.dtype}")
            # read-only buffers (np.frombuffer of a broadcast) are copied by torch.tensor, not wrapped
            src = torch.from_numpy(arr) if arr.flags.writeable else torch.tensor(arr)
        if src.dim() != 1 or src.numel() != target.numel():
            raise DataError(f"{what}: expected a 1-D buffer of {target.numel()} values, got shape {tuple(src.shape)}")
        # one float64 sum is finite exactly when no value is NaN/inf (and is ~20x cheaper than isfinite().all())
        if not math.isfinite(float(torch.sum(src, dtype=torch.float64))):
            raise DataError(f"{what}: the buffer contains NaN or infinite values")
        with torch.no_grad():
            target.copy_(src)

    # ----------------------------------------------------------------- data preparation

    def _prepare(self, x: Any, y: Any, features_mask: Any = None, labels_mask: Any = None) -> Batch:
        if isinstance(self.config, GraphConfig):
            return self._prepare_graph(self.config, x, y, features_mask, labels_mask)
        if self.config is not None:
            xt = features_to_tensor(x, self.config.input_type, self.dtype, field=_input_field(self.config))
        else:
            xt = _tensor_from_any(x, self.dtype)
        if self._vocab is not None:
            check_embedding_indices(xt, self._vocab)
        n = xt.shape[0]
        yt = None if y is None else labels_to_tensor(y, n, self.heads[0], self.dtype)
        steps = int(xt.shape[1]) if xt.dim() == 3 else None
        label_steps = int(yt.shape[1]) if yt is not None and self.heads[0].recurrent else None
        return (
            xt,
            yt,
            mask_to_tensor(features_mask, n, "features_mask", steps),
            mask_to_tensor(labels_mask, n, "labels_mask", label_steps),
        )

    def _prepare_graph(self, config: GraphConfig, x: Any, y: Any, fmask: Any, lmask: Any) -> Batch:
        """Tensors per graph input (features, masks) and per output (labels, masks), as tuples."""
        ins, outs = config.inputs, config.outputs
        xs = tuple(
            features_to_tensor(a, t, self.dtype, what)
            for (a, what), t in zip(_slots(x, ins, "features"), config.input_types, strict=True)
        )
        n = int(xs[0].shape[0])
        for a, vocab, name in zip(xs, self._input_vocab, ins, strict=True):
            if a.shape[0] != n:
                raise DataError(f"features of {name!r} have {a.shape[0]} rows but the first input's have {n}")
            if vocab is not None:
                check_embedding_indices(a, vocab)
        ys = None
        if y is not None:
            ys = tuple(
                labels_to_tensor(a, n, head, self.dtype, what)
                for (a, what), head in zip(_slots(y, outs, "labels"), self.heads, strict=True)
            )
        fm = None
        if fmask is not None:
            fm = tuple(
                mask_to_tensor(m, n, w, int(a.shape[1]) if a.dim() == 3 else None)
                for (m, w), a in zip(_slots(fmask, ins, "features_mask"), xs, strict=True)
            )
        lm = None
        if lmask is not None:
            label_steps = [
                int(a.shape[1]) if a is not None and h.recurrent else None
                for a, h in zip(ys or [None] * len(self.heads), self.heads, strict=True)
            ]
            lm = tuple(
                mask_to_tensor(m, n, w, t)
                for (m, w), t in zip(_slots(lmask, outs, "labels_mask"), label_steps, strict=True)
            )
        return xs, ys, fm, lm

    def _batches_from(self, data: Any) -> Iterator[Batch]:
        """Minibatches from an iterator of ``DataSet``-like objects (features, labels, masks attributes)."""
        for ds in data:
            if not hasattr(ds, "features"):
                raise DataError(
                    f"expected minibatches with .features/.labels (DataSet), got {type(ds).__name__}; "
                    "to train on arrays call fit(x, y)"
                )
            labels = getattr(ds, "labels", None)
            yield self._prepare(
                ds.features, labels, getattr(ds, "features_mask", None), getattr(ds, "labels_mask", None)
            )

    @staticmethod
    def _slice(batch: Batch, idx: Tensor | slice) -> Batch:
        return tuple(_take(t, idx) for t in batch)  # type: ignore[return-value]

    # ----------------------------------------------------------------- training

    def add_listeners(self, *listeners: TrainingListener) -> Network:
        """Attach listeners called during ``fit``."""
        self.listeners.extend(listeners)
        return self

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        features_mask: Any = None,
        labels_mask: Any = None,
        validation_data: Any = None,
        callbacks: Sequence[Callback] = (),
        verbose: int | bool | None = None,
        on_divergence: OnDivergence = "raise",
    ) -> History:
        """Train for ``epochs`` over numpy arrays (labels: class indices or one-hot) or a ``DataSet`` iterator.

        Arrays are checked and converted to tensors once. With ``shuffle`` the order is re-drawn every
        epoch from ``seed`` and the epoch number, so a fixed seed reproduces training exactly (on CPU).
        ``validation_data`` (``(x, y)`` or a ``DataSet`` iterator) adds ``val_loss`` (and ``val_accuracy``
        for classifiers) to every epoch; ``callbacks`` (``EarlyStopping``, ``ModelCheckpoint``,
        ``LearningRateLogger``) run after each epoch; ``verbose`` draws a progress bar (None: only in a
        terminal or notebook; 0 off; 1 bar; 2 one line per epoch). Returns the epochs' ``History``.

        A NaN or infinite score (checked every step) or parameters (every epoch) raise
        ``TrainingDivergedError`` naming the iteration and the last finite score; ``on_divergence="warn"``
        warns once and trains on instead.
        """
        if epochs < 1:
            raise DataError(f"epochs: expected a positive int, got {epochs}")
        if batch_size < 1:
            raise DataError(f"batch_size: expected a positive int, got {batch_size}")
        if self.device.type != "cpu":  # a GPU's memory is small and fixed: say so before the first batch fails
            self.check_device_memory(batch_size)
        arrays = y is not None or isinstance(x, (np.ndarray, Tensor))
        if arrays:
            if y is None:
                raise DataError("labels are missing: call fit(x, y) with arrays, or fit(iterator) with DataSets")
            data = self._prepare(x, y, features_mask, labels_mask)
        validate = None if validation_data is None else local_validator(self, validation_data)
        session = FitSession(self, epochs, callbacks=callbacks, validate=validate,
                             val_names=validation_names(self) if validate else (), verbose=verbose,
                             on_divergence=on_divergence)
        for listener in self.listeners:
            listener.on_fit_start(self)
        session.start()
        with torch.random.fork_rng(devices=[]):
            for _ in range(epochs):
                for listener in self.listeners:
                    listener.on_epoch_start(self, self.epoch)
                if arrays:
                    batches = self._epoch_batches(data, batch_size, shuffle)
                else:
                    if hasattr(x, "reset"):
                        x.reset()
                    batches = self._batches_from(x)
                session.begin_epoch(-(-_rows(data[0]) // batch_size) if arrays else _length(x))
                steps = 0
                for batch in batches:
                    session.step(self.fit_batch(batch))
                    steps += 1
                if steps == 0:
                    raise DataError("the data yielded no minibatches; check that the iterator is not empty")
                self.epoch += 1
                for listener in self.listeners:
                    listener.on_epoch_end(self, self.epoch - 1)
                if not session.end_epoch():
                    break
        for listener in self.listeners:
            listener.on_fit_end(self)
        return session.finish()

    def _epoch_batches(self, data: Batch, batch_size: int, shuffle: bool) -> Iterator[Batch]:
        n = _rows(data[0])
        if shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                yield self._slice(data, order[start : start + batch_size])
        else:
            for start in range(0, n, batch_size):
                yield self._slice(data, slice(start, start + batch_size))

    def fit_batch(self, batch: Batch) -> Tensor:
        """One parameter update on prepared tensors; returns the (detached) score tensor."""
        score = self.compute_gradient(batch)
        if not self.step_skipped:  # fp16 overflow: the gradient was zeroed, the updater does not see this step
            self.gradient_to_update()
        self.apply_update(self.flat.grads, score, _rows(batch[0]))
        return score

    # The three steps of ``fit_batch``, public so that distributed training can put communication between
    # them: all-reduce the gradient after step 1 (dense gradient sharing), or encode the update after step 2.

    def compute_gradient(self, batch: Batch, *, postprocess: bool = True) -> Tensor:
        """Step 1: forward, backward and gradient post-processing into ``flat.grads``; returns the score.

        With ``postprocess=False`` the raw gradient stays (e.g. to all-reduce it first); call
        ``postprocess_gradient`` before ``gradient_to_update`` then. The batch is copied to the network's device
        here (once per batch); with fp16 the loss is scaled for backward and the gradient unscaled after it.
        """
        x, y, fmask, lmask = self.to_device(batch)
        if y is None:
            raise DataError("a training minibatch has no labels")
        if not self.model.training:  # train() walks every submodule: only when a predict/evaluate left eval mode
            self.model.train()
        if self._stochastic:
            seed_step_rng(self.seed * 1_000_003 + self.iteration)
        self.flat.grads.zero_()
        loss = self._loss(x, y, fmask, lmask)
        scaler = self.mixed.scaler
        if loss.requires_grad:  # a parameter-free network has nothing to differentiate
            (loss if scaler is None else scaler.scale(loss)).backward()  # type: ignore[no-untyped-call]
        if scaler is not None:
            self.step_skipped = not scaler.unscale_(self.flat.grads)
        for listener in self.listeners:
            listener.on_gradient_calculation(self)
        score = loss.detach() + self.post.regularization_score()
        if postprocess and not self.step_skipped:  # a skipped fp16 step keeps its zero gradient
            self.postprocess_gradient()
        return score

    def postprocess_gradient(self) -> None:
        """Gradient normalization and L1/L2 terms into ``flat.grads`` (part of ``compute_gradient``)."""
        self.post.before_update(self.updater.learning_rate(self.iteration, self.epoch))

    def gradient_to_update(self) -> None:
        """Step 2: the updater turns ``flat.grads`` into the update to subtract, in place (weight decay too)."""
        self.updater.step_(self.flat.grads, self.flat.trainable, self.iteration, self.epoch)
        self.post.after_update(self.updater.learning_rate(self.iteration, self.epoch))

    def apply_update(self, update: Tensor, score: Tensor, batch_size: int) -> None:
        """Step 3: subtract ``update`` from the trainable parameters, count the iteration, call the listeners."""
        with torch.no_grad():
            self.flat.trainable.sub_(update)
        self.last_score = score
        info = IterationInfo(self.iteration, self.epoch, batch_size, score)
        self.iteration += 1
        for listener in self.listeners:
            listener.iteration_done(self, info)

    def _loss(self, x: Slot, y: Slot, fmask: Slot | None, lmask: Slot | None) -> Tensor:
        """Sum over the heads of each head's mean loss (one head for a stack)."""
        preouts = self.preouts(x, fmask)
        total: Tensor | None = None
        for head, (preout, out_mask), labels, lm in zip(
            self.heads, preouts, _seq(y), _seq(lmask, len(self.heads)), strict=True
        ):
            if labels is None:
                raise DataError("a minibatch has no labels for one of the outputs")
            per_example = per_example_loss(head.loss, head.activation, preout, labels)
            mask = lm if lm is not None else (out_mask if head.recurrent else None)
            loss = mean_loss(per_example, mask)
            total = loss if total is None else total + loss
        return cast(Tensor, total)

    def preouts(self, x: Slot, fmask: Slot | None = None) -> list[tuple[Tensor, Tensor | None]]:
        """The heads' pre-activations; under mixed precision computed in autocast and returned in ``dtype``."""
        if not self.mixed.enabled:
            return self.model.forward_preouts(_tensors(x), _seq(fmask))
        with self.mixed.autocast():
            preouts = self.model.forward_preouts(_tensors(x), _seq(fmask))
        return [(p.to(self.dtype), m) for p, m in preouts]

    def to_device(self, batch: Batch) -> Batch:
        """``batch`` on the network's device: on CUDA through pinned memory and non-blocking copies; as is on CPU."""
        if self.device.type == "cpu":
            return batch
        return tuple(_moved(t, self.device) for t in batch)  # type: ignore[return-value]

    # ----------------------------------------------------------------- inference and scoring

    @torch.no_grad()
    def output(
        self, x: Any, *, batch_size: int | None = None, features_mask: Any = None
    ) -> np.ndarray | list[np.ndarray]:
        """Activated network output (class probabilities for classifiers) as a numpy array.

        A graph with several outputs returns a list with one array per output, in ``outputs`` order.
        ``batch_size``: rows per forward pass; None leaves it to ``inference_batch_size`` (cache-sized on CPU).
        """
        data = self._prepare(x, None, features_mask)
        outs = [t.numpy() for t in self._output_tensors(data, self._pass_rows(batch_size))]
        return outs[0] if len(outs) == 1 else outs

    def inference_batch_size(self) -> int:
        """Rows per forward pass when ``batch_size`` is left out of ``output``, ``score`` and the evaluations:
        on CPU the largest power of two whose widest activation stays cache-sized (e.g. 64 for a LeNet-style
        network, 1,024 for a small MLP), on an accelerator 1,024. See ``deepspark.nn.inference_batch``."""
        if self._inference_rows is None:
            self._inference_rows = inference_batch_size(self)
        return self._inference_rows

    def _pass_rows(self, batch_size: int | None) -> int:
        rows = checked_batch_size(batch_size)
        return self.inference_batch_size() if rows is None else rows

    def _output_tensor(self, data: Batch, batch_size: int) -> Tensor:
        return self._output_tensors(data, batch_size)[0]

    def _output_tensors(self, data: Batch, batch_size: int) -> list[Tensor]:
        self.model.eval()
        acts = [activation_fn(h.activation) for h in self.heads]
        outs: list[list[Tensor]] = [[] for _ in self.heads]
        n = _rows(data[0])
        for start in range(0, n, batch_size):
            x, _, fmask, _ = self.to_device(self._slice(data, slice(start, start + batch_size)))
            preouts = self.preouts(x, fmask)
            for out, act, (preout, _) in zip(outs, acts, preouts, strict=True):
                out.append(act(preout).cpu())
        return [torch.cat(out) for out in outs]

    @torch.no_grad()
    def score(self, x: Any, y: Any = None, *, batch_size: int | None = None) -> float:
        """Mean loss over the data (plus regularization), in inference mode."""
        self.model.eval()
        total, count = 0.0, 0
        for x_b, y_b, fm, lm in map(self.to_device, self._eval_batches(x, y, self._pass_rows(batch_size))):
            if y_b is None:
                raise DataError("score needs labels")
            total += float(self._loss(x_b, y_b, fm, lm)) * _rows(x_b)
            count += _rows(x_b)
        return total / count + float(self.post.regularization_score())

    def _eval_batches(self, x: Any, y: Any, batch_size: int) -> Iterator[Batch]:
        if y is not None or isinstance(x, (np.ndarray, Tensor)):
            data = self._prepare(x, y)
            n = _rows(data[0])
            for start in range(0, n, batch_size):
                yield self._slice(data, slice(start, start + batch_size))
        else:
            yield from self._batches_from(x)

    @torch.no_grad()
    def do_evaluation(
        self, x: Any, y: Any = None, *evaluations: Any, batch_size: int | None = None
    ) -> Sequence[Any]:
        """Run every evaluation (anything with ``eval(labels, predictions, mask)``) over the data."""
        self.model.eval()
        act = activation_fn(self.heads[0].activation)
        for xb, yb, fm, lm in map(self.to_device, self._eval_batches(x, y, self._pass_rows(batch_size))):
            if yb is None:
                raise DataError("evaluation needs labels")
            preout, out_mask = self.preouts(xb, fm)[0]  # graphs: the first output
            pred = act(preout).cpu().numpy()
            labels, lm0 = _seq(yb)[0], _seq(lm, len(self.heads))[0]
            mask = lm0 if lm0 is not None else out_mask
            for e in evaluations:
                e.eval(cast(Tensor, labels).cpu().numpy(), pred, None if mask is None else mask.cpu().numpy())
        return evaluations

    def evaluate(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int | None = None,
        top_n: int = 1,
        labels: Sequence[str] | None = None,
    ) -> Evaluation:
        """Classification metrics (accuracy, precision, recall, F1, confusion matrix) over the data."""
        from deepspark.eval import Evaluation

        head = self.heads[0]
        if head.loss not in CLASSIFICATION_LOSSES and head.activation not in ("softmax", "sigmoid"):
            raise DeepSparkError(
                f"evaluate() is for classifiers; this network's output uses loss {head.loss!r} with "
                f"activation {head.activation!r}: use evaluate_regression()"
            )
        ev = Evaluation(n_classes=head.n_out, labels=labels, top_n=top_n)
        self.do_evaluation(x, y, ev, batch_size=batch_size)
        return ev

    def evaluate_regression(self, x: Any, y: Any = None, *, batch_size: int | None = None) -> RegressionEvaluation:
        """Regression metrics (MSE, MAE, RMSE, RSE, R^2, Pearson) per output column."""
        from deepspark.eval import RegressionEvaluation

        ev = RegressionEvaluation(n_columns=self.heads[0].n_out)
        self.do_evaluation(x, y, ev, batch_size=batch_size)
        return ev

    # ----------------------------------------------------------------- reports and archives

    def summary(self) -> str:
        """A table of layers: name, type, input -> output type, parameter count."""
        from deepspark.nn.report import summary

        return summary(self)

    def memory_report(self, batch_size: int = 32) -> Any:
        """Estimated bytes for parameters, gradients, updater state and activations at ``batch_size`` on this
        network's device, with what the device has free (``fits``; ``warning()`` when it does not)."""
        from deepspark.nn.report import memory_report

        return memory_report(self, batch_size)

    def check_device_memory(self, batch_size: int) -> str | None:
        """Warn (``RuntimeWarning``, and the ``deepspark`` log) when training at ``batch_size`` would not fit in
        the device's free memory; returns the message, or None when it fits or is unknown."""
        message: str | None = self.memory_report(batch_size).warning()
        if message is not None:
            import logging
            import warnings

            logging.getLogger("deepspark").warning("%s", message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return message

    def save(
        self, path: str | Path, *, save_updater: bool = True, normalizer: Any = None, allow_non_finite: bool = False
    ) -> None:
        """Write a model archive (config, params, optional updater state and normalizer, metadata).

        NaN or infinite parameters (a diverged fit) are refused with ``TrainingDivergedError`` unless
        ``allow_non_finite=True``: such an archive cannot be loaded back.
        """
        from deepspark.nn.persist import save_network

        if not allow_non_finite and not bool(torch.isfinite(self.flat.params).all()):
            bad = int((~torch.isfinite(self.flat.params)).sum())
            raise TrainingDivergedError(
                f"cannot save {path}: {bad} of the network's {self.num_params} parameters are NaN or infinite "
                f"(training diverged, last iteration {self.iteration - 1}); retrain with a lower learning_rate, or "
                "pass allow_non_finite=True to write the archive anyway (Network.load will refuse it)",
                self.iteration - 1,
            )

        save_network(self, path, save_updater=save_updater, normalizer=normalizer)

    def export_onnx(self, path: str | Path, *, verify: bool = True, opset: int | None = None) -> Any:
        """Write an ONNX model (activated outputs, dynamic batch) and, with ``verify``, check it in onnxruntime.

        Returns an ``OnnxExport`` (path, input/output names, max abs difference to torch). Needs the
        ``export`` extra (``pip install 'deepspark[export]'``).
        """
        from deepspark.nn.export import export_onnx

        return export_onnx(self, path, verify=verify, opset=opset)

    def export_torch(self, path: str | Path) -> Path:
        """Write a plain ``state_dict`` as safetensors plus the module's source reference (``load_torch`` reads it)."""
        from deepspark.nn.export import export_torch

        return export_torch(self, path)

    @staticmethod
    def load(path: str | Path, *, device: str = "cpu") -> Network:
        """Read an archive written by ``save`` onto ``device``; hostile or damaged files raise ``ModelFormatError``.

        Archives hold host arrays only: one saved from a GPU loads on a CPU-only machine and the other way round.
        """
        from deepspark.nn.persist import load_network

        return load_network(path, device=device)

    def __repr__(self) -> str:
        n_layers = len(self.config.layers) if self.config is not None else "?"
        return f"Network(layers={n_layers}, params={self.num_params()}, iteration={self.iteration})"


class _ModuleModel(nn.Module):
    """Adapts a user's module to the protocol ``Network`` trains through."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward_preouts(self, inputs: list[Tensor], masks: list[Tensor | None]) -> list[tuple[Tensor, Tensor | None]]:
        return [(self.inner(inputs[0]), None)]


def _seq(t: Slot | None, n: int = 1) -> list[Tensor | None]:
    """A batch slot as a list: one entry per graph input/output (``n`` Nones for a missing slot)."""
    if t is None:
        return [None] * n
    return list(t) if isinstance(t, tuple) else [t]


def _tensors(t: Slot) -> list[Tensor]:
    """A present batch slot (features or labels) as a list of tensors."""
    return [cast(Tensor, a) for a in t] if isinstance(t, tuple) else [t]


def _input_field(config: Any) -> str:
    """The config field that sets the input width (``input_shape`` for a ``ModuleConfig``)."""
    return str(getattr(config, "INPUT_FIELD", "input_type"))


def _length(data: Any) -> int | None:
    """Minibatches per epoch of an iterator that knows it (``len``), else None."""
    try:
        return len(data)
    except TypeError:
        return None


def _rows(t: Slot) -> int:
    first = t[0] if isinstance(t, tuple) else t
    return int(cast(Tensor, first).shape[0])


def _moved(t: Slot | None, device: torch.device) -> Slot | None:
    """A batch slot copied to ``device`` (pinned host memory first, so the copy does not block the host)."""
    if isinstance(t, tuple):
        return tuple(_moved(s, device) for s in t)  # type: ignore[misc]
    if t is None or t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def _take(t: Slot | None, idx: Tensor | slice) -> Slot | None:
    if isinstance(t, tuple):
        return tuple(None if s is None else s[idx] for s in t)
    return None if t is None else t[idx]


def _slots(value: Any, names: tuple[str, ...], what: str) -> list[tuple[Any, str]]:
    """Split user data into (entry, label for messages) per graph input/output; a list/tuple holds one per name."""
    per_name = isinstance(value, (list, tuple)) and (
        len(names) > 1 or (len(value) == 1 and (value[0] is None or isinstance(value[0], (np.ndarray, Tensor))))
    )
    if not per_name:
        if len(names) > 1:
            raise DataError(f"{what}: the graph has {len(names)} of them {list(names)}; pass a list, one array each")
        return [(value, what)]
    if len(value) != len(names):
        raise DataError(f"{what}: expected a list of {len(names)} arrays, one per {list(names)}, got {len(value)}")
    return [(v, what if len(names) == 1 else f"{what} of {n!r}") for v, n in zip(value, names, strict=True)]


def _tensor_from_any(x: Any, dtype: torch.dtype) -> Tensor:
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"features are empty (shape {arr.shape}); pass at least one example")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError("features contain NaN or infinite values; clean or impute them before training")
    return to_dtype_finite(arr, dtype, "features")
