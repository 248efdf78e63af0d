"""``StatsListener``: collects training stats from ``Network.fit`` or ``SparkNetwork.fit`` into a stats storage.

Records are written while training runs and shown later (``deepspark report``) or live by a UI server in
another process (``deepspark ui`` + ``RemoteStatsRouter``): the UI never shares the training process.
Record types per session: ``model`` (driver: score, learning rates, throughput, per-parameter
magnitudes, histograms, update:param ratios, memory, GC), ``worker`` (one per Spark worker: throughput,
score, memory, GC), ``spark`` (phase events for the timeline; phase totals and advice at the end) and
``session`` (``fit_end`` when a fit returns, so a UI can tell finished runs from running ones).
"""

from __future__ import annotations

import math
import os
import platform
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepspark.errors import ConfigError
from deepspark.nn.listeners import IterationInfo, TrainingListener
from deepspark.spark._probes import gc_monitor, process_reading
from deepspark.spark.listeners import RoundReport, SparkTrainingListener
from deepspark.stats.records import StatsRecord
from deepspark.stats.storage import StatsStorage

if TYPE_CHECKING:
    from deepspark.nn import Network
    from deepspark.spark.events import PhaseEvent
    from deepspark.spark.stats import TrainingStats

HISTOGRAM_BINS = 20
HISTOGRAM_SAMPLE = 65_536  # values per histogram at most (a strided sample of bigger tensors)
MAX_EVENTS_PER_RECORD = 5_000


def tensor_stats(values: np.ndarray | torch.Tensor, histogram: bool) -> dict[str, Any]:
    """Mean magnitude, (population) std and, optionally, a 20-bin histogram of one parameter's values.

    Computed with torch on the values' own dtype, without copies: a report must cost a small fraction
    of the training steps between two reports.
    """
    t = torch.as_tensor(values).detach().reshape(-1)
    if t.numel() == 0:
        return {"mean_magnitude": 0.0, "std": 0.0}
    n = t.numel()
    out: dict[str, Any] = {
        "mean_magnitude": float(torch.linalg.vector_norm(t, ord=1)) / n,  # no |t| temporary
        "std": float(t.std(unbiased=False)) if n > 1 else 0.0,
    }
    if histogram:
        lo_t, hi_t = torch.aminmax(t)
        lo, hi = float(lo_t), float(hi_t)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return {"mean_magnitude": None, "std": None}  # NaN/inf parameters: the UI flags the report
        if hi <= lo:  # all values equal: one centred bin range, as numpy does
            lo, hi = lo - 0.5, hi + 0.5
        stride = -(-n // HISTOGRAM_SAMPLE)  # big tensors: counts of an evenly strided sample, exact min and max
        counts = torch.histc(t[::stride].float(), bins=HISTOGRAM_BINS, min=lo, max=hi)
        out["histogram"] = {"min": lo, "max": hi, "counts": [int(c) for c in counts.tolist()], "stride": stride}
    for key in ("mean_magnitude", "std"):
        if not math.isfinite(out[key]):
            out[key] = None
    return out


def update_ratio(update_magnitude: float, param_magnitude: float) -> float | None:
    """log10(mean |update| / mean |param|); None where either is zero (no meaningful ratio)."""
    if update_magnitude <= 0 or param_magnitude <= 0:
        return None
    return math.log10(update_magnitude / param_magnitude)


class StatsListener(TrainingListener, SparkTrainingListener):
    """Reports training stats every ``report_every`` iterations to a storage (SQLite, memory, or a UI server).

    Attach it to a ``Network`` (``net.add_listeners(listener)``) or a ``SparkNetwork``
    (``SparkNetwork(..., listeners=[listener])``). On Spark the driver computes the per-parameter stats
    on the averaged parameters (the update is their change over the round, gradients are not seen) and
    workers' readings arrive with the round results. There "updates" are the round's parameter change
    divided by the iterations it spans, so update:param ratios read per step as in local training.

    Args:
        storage: where records go: ``SQLiteStatsStorage``, ``InMemoryStatsStorage`` or ``RemoteStatsRouter``.
        report_every: iterations between reports (default 10).
        session_id: identifies the run in the UI; a time-stamped random id by default.
        histograms: also record 20-bin histograms of parameters, updates and gradients.
        activations: also record mean magnitude and std of each layer's output (adds forward hooks).

    Example:
        >>> storage = SQLiteStatsStorage("runs.db")                       # doctest: +SKIP
        >>> net.add_listeners(StatsListener(storage)).fit(x, y, epochs=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        storage: StatsStorage,
        report_every: int = 10,
        *,
        session_id: str | None = None,
        histograms: bool = True,
        activations: bool = False,
    ) -> None:
        if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
            raise ConfigError(f"expected a positive int, got {report_every!r}", "report_every")
        if not isinstance(storage, StatsStorage):
            raise ConfigError(
                f"expected a StatsStorage (SQLiteStatsStorage, InMemoryStatsStorage, RemoteStatsRouter), "
                f"got {type(storage).__name__}",
                "storage",
            )
        self.storage = storage
        self.report_every = report_every
        self.session_id = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        StatsRecord(self.session_id, "model", "driver")  # validates the id now, not at the first report
        self.histograms = histograms
        self.activations = activations
        self._static_sent = False
        self._gradients: dict[str, Any] = {}
        self._acts: dict[str, dict[str, float]] = {}
        self._capture = False
        self._hooks: list[Any] = []
        self._window_start = time.perf_counter()
        self._window_examples = 0
        self._window_batches = 0
        self._prev_params: np.ndarray | None = None
        self._prev_iteration = 0
        self._last_report = -1
        self._events: list[PhaseEvent] = []
        self._layout_cache: dict[int, list[tuple[str, int, int, int]]] = {}
        gc_monitor()

    # ----------------------------------------------------------------- shared

    def _layout(self, net: Network) -> list[tuple[str, int, int, int]]:
        """(key, offset, numel, layer index) of every trainable parameter; keys like ``layer0.weight``."""
        cached = self._layout_cache.get(id(net.flat))
        if cached is not None:
            return cached
        out = []
        for seg in net.flat.segments:
            if not seg.trainable:
                continue
            role = net.roles.get(seg.name)
            layer_name = role.layer_name if role is not None else seg.name.rsplit(".", 1)[0]
            leaf = seg.name.rsplit(".", 1)[-1]
            out.append((f"{layer_name}.{leaf}", seg.offset, seg.numel, role.layer if role is not None else 0))
        self._layout_cache = {id(net.flat): out}
        return out

    def _per_param(self, net: Network, flat: np.ndarray | torch.Tensor, histogram: bool) -> dict[str, Any]:
        return {key: tensor_stats(flat[off : off + n], histogram) for key, off, n, _ in self._layout(net)}

    def _emit(self, type_id: str, worker_id: str, iteration: int, kind: str, payload: dict[str, Any]) -> None:
        self.storage.put([StatsRecord(self.session_id, type_id, worker_id, time.time(), iteration, kind, payload)])  # type: ignore[arg-type]

    def _static(self, net: Network, extra: dict[str, Any]) -> None:
        if self._static_sent:
            return
        self._static_sent = True
        self._emit("model", "driver", net.iteration, "static", static_info(net, self._layout(net), extra))

    def _learning_rates(self, net: Network) -> dict[str, float]:
        lr = float(net.updater.learning_rate(net.iteration, net.epoch))
        return {name: lr for name in dict.fromkeys(k.rsplit(".", 1)[0] for k, *_ in self._layout(net))}

    def _model_payload(
        self,
        net: Network,
        score: float,
        params: np.ndarray | torch.Tensor,
        update: np.ndarray | torch.Tensor | None,
        seconds: float,
    ) -> dict[str, Any]:
        pstats = self._per_param(net, params, self.histograms)
        ustats = self._per_param(net, update, self.histograms) if update is not None else {}
        ratios = {
            k: update_ratio(ustats[k]["mean_magnitude"] or 0.0, pstats[k]["mean_magnitude"] or 0.0)
            for k in pstats
            if k in ustats
        }
        seconds = max(seconds, 1e-9)
        return {
            "score": score if math.isfinite(score) else None,
            "epoch": net.epoch,
            "learning_rates": self._learning_rates(net),
            "examples_per_sec": self._window_examples / seconds,
            "minibatches_per_sec": self._window_batches / seconds,
            "params": pstats,
            "updates": ustats,
            "gradients": self._gradients,
            "ratios": ratios,
            "activations": self._acts,
            "process": process_reading(),
        }

    def _reset_window(self) -> None:
        self._window_start = time.perf_counter()
        self._window_examples = 0
        self._window_batches = 0

    # ----------------------------------------------------------------- Network.fit hooks

    def on_fit_start(self, net: Network) -> None:
        self._static(net, {"training": "local"})
        self._reset_window()
        if self.activations and not self._hooks:
            self._add_activation_hooks(net)
        self._capture = self.activations and net.iteration % self.report_every == 0

    def on_gradient_calculation(self, net: Network) -> None:
        """Record gradient stats on report iterations (the gradient buffer becomes the update right after)."""
        if net.iteration % self.report_every == 0:
            grads = net.flat.grads.detach()
            self._gradients = self._per_param(net, grads, False)  # histograms: params and updates only

    def iteration_done(self, net: Network, info: IterationInfo) -> None:
        self._window_examples += info.batch_size
        self._window_batches += 1
        if info.iteration % self.report_every == 0:
            params = net.flat.params.detach().cpu().numpy()
            update = (
                -net.flat.grads.detach().cpu().numpy()
            )  # the buffer holds what was subtracted: the change is its negative
            seconds = time.perf_counter() - self._window_start
            payload = self._model_payload(net, info.score, params, update, seconds)
            self._emit("model", "driver", info.iteration, "update", payload)
            self._gradients, self._acts = {}, {}
            self._reset_window()
        self._capture = self.activations and (info.iteration + 1) % self.report_every == 0

    def on_fit_end(self, net: Network) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._emit_fit_end(net)

    def _emit_fit_end(self, net: Network) -> None:
        """Marks the end of a fit, so the UI can tell a finished run from a running one."""
        self._emit("session", "driver", net.iteration, "update", {"event": "fit_end", "epoch": net.epoch})

    def _add_activation_hooks(self, net: Network) -> None:
        layers = getattr(net.model, "layers", None)
        if layers is None:
            return
        for i, module in enumerate(layers):
            name = f"layer{i}"

            def hook(_m: Any, _inp: Any, out: Any, name: str = name) -> None:
                out = out[0] if isinstance(out, tuple) else out  # hidden layers return (output, mask)
                if self._capture and hasattr(out, "detach"):
                    a = out.detach()
                    self._acts[name] = {"mean_magnitude": float(a.abs().mean()), "std": float(a.std(unbiased=False))}

            self._hooks.append(module.register_forward_hook(hook))

    # ----------------------------------------------------------------- SparkNetwork.fit hooks (driver side)

    def on_spark_fit_start(self, net: Network, info: dict[str, Any]) -> None:
        n = int(info.get("num_workers", 0))
        self._static(net, {"training": "spark", **info, "worker_ids": [f"worker-{i}" for i in range(n)]})
        self._prev_params = net.params()
        self._prev_iteration = net.iteration
        self._last_report = -1
        self._events = []
        self._reset_window()

    def on_round_done(self, net: Network, report: RoundReport) -> None:
        """Driver-side stats of one round: model record (averaged params), worker records, phase events."""
        params = report.params if report.params is not None else net.params()
        self._window_examples += report.examples
        self._window_batches += report.minibatches
        self._events.extend(report.events)
        due = self._last_report < 0 or report.iteration // self.report_every > self._last_report // self.report_every
        if due:
            update = None
            if self._prev_params is not None:  # the change over the round, per iteration, so ratios read as per step
                update = (params - self._prev_params) / max(report.iteration - self._prev_iteration, 1)
            seconds = time.perf_counter() - self._window_start
            payload = self._model_payload(net, report.score, params, update, seconds)
            payload["round"] = report.round
            self._emit("model", "driver", report.iteration, "update", payload)
            for w in report.workers:
                self._emit("worker", f"worker-{int(w.get('worker', 0))}", report.iteration, "update", worker_payload(w))
            self._flush_events(report.iteration)
            self._last_report = report.iteration
            self._reset_window()
        self._prev_params = np.array(params, copy=True)
        self._prev_iteration = report.iteration

    def _flush_events(self, iteration: int) -> None:
        if not self._events:
            return
        events, self._events = self._events[:MAX_EVENTS_PER_RECORD], self._events[MAX_EVENTS_PER_RECORD:]
        rows = [[e.worker, e.phase, e.side, e.start, e.duration, e.round, e.attempt] for e in events]
        self._emit("spark", "driver", iteration, "update", {"events": rows})

    def on_spark_fit_end(self, net: Network, stats: TrainingStats | None) -> None:
        while self._events:
            self._flush_events(net.iteration)
        if stats is None:
            self._emit_fit_end(net)
            return
        totals = [
            {"phase": t.phase, "side": t.side, "count": t.count, "total": t.total, "mean": t.mean, "share": t.share}
            for t in stats.phase_totals().values()
        ]
        advice = [
            {"severity": f.severity, "title": f.title, "detail": f.detail, "setting": f.setting} for f in stats.advice()
        ]
        self._emit("spark", "driver", net.iteration, "update", {"phase_totals": totals, "advice": advice})
        self._emit_fit_end(net)


def worker_payload(w: dict[str, Any]) -> dict[str, Any]:
    """A worker record's payload from a worker reading (throughput from its own fit time)."""
    fit = max(float(w.get("fit_seconds", 0.0)), 1e-9)
    score = float(w.get("score", math.nan))
    return {
        "host": str(w.get("host", "")),
        "pid": int(w.get("pid", 0)),
        "examples": int(w.get("examples", 0)),
        "minibatches": int(w.get("minibatches", 0)),
        "examples_per_sec": int(w.get("examples", 0)) / fit,
        "minibatches_per_sec": int(w.get("minibatches", 0)) / fit,
        "score": score if math.isfinite(score) else None,
        "process": {
            "rss_bytes": int(w.get("rss_bytes", 0)),
            "torch_bytes": int(w.get("torch_bytes", 0)),
            "gc": w.get("gc", {}),
        },
    }


def static_info(net: Network, layout: Sequence[tuple[str, int, int, int]], extra: dict[str, Any]) -> dict[str, Any]:
    """Once per session: config, summary, layer table, parameter count, hardware and software versions."""
    import torch

    import deepspark

    config = net.config
    layers_conf = list(getattr(config, "layers", ()) or ())
    counts: dict[int, int] = {}
    for _, _, n, layer in layout:
        counts[layer] = counts.get(layer, 0) + n
    table = []
    for i, layer in enumerate(layers_conf):
        table.append(
            {
                "index": i,
                "name": f"layer{i}",
                "type": type(layer).__name__,
                "params": counts.get(i, 0),
                "activation": str(getattr(layer, "activation", "") or ""),
                "n_out": getattr(layer, "n_out", None) if isinstance(getattr(layer, "n_out", None), int) else None,
            }
        )
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    try:
        import pyspark

        spark_version = str(pyspark.__version__)
    except ImportError:
        spark_version = ""
    return {
        "config": config.to_json(indent=None) if config is not None else "",
        "summary": net.summary() if config is not None else "",
        "layers": table,
        "param_keys": [k for k, *_ in layout],
        "num_params": net.num_params(),
        "hardware": {
            "host": socket.gethostname(),
            "cpus": os.cpu_count() or 0,
            "memory_bytes": int(memory),
            "machine": platform.machine(),
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        },
        "software": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pyspark": spark_version,
            "deepspark": deepspark.__version__,
        },
        **extra,
    }
