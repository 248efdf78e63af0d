"""Offline outputs of a stats file: one self-contained HTML report, and TensorBoard event files."""

from __future__ import annotations

from pathlib import Path

from deepspark.errors import StorageError
from deepspark.stats.storage import SQLiteStatsStorage, StatsStorage
from deepspark.ui.page import render_report
from deepspark.ui.view import session_view


def _open(storage: str | Path | StatsStorage) -> tuple[StatsStorage, bool]:
    if isinstance(storage, StatsStorage):
        return storage, False
    return SQLiteStatsStorage(storage, read_only=True), True


def write_report(storage: str | Path | StatsStorage, output: str | Path, session_id: str | None = None) -> Path:
    """Write one HTML file with the four pages' charts for a session (the newest by default); works offline.

    Example:
        >>> write_report("runs.db", "report.html")        # doctest: +SKIP
    """
    store, owned = _open(storage)
    try:
        view = session_view(store, session_id)
    finally:
        if owned:
            store.close()
    if view["session"] is None:
        raise StorageError(f"{storage} holds no training sessions; train with a StatsListener first")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(view), encoding="utf-8")
    return out


def export_tensorboard(
    storage: str | Path | StatsStorage, logdir: str | Path, session_id: str | None = None
) -> list[Path]:
    """Write TensorBoard event files (scalars and histograms) with tensorboardX, one run folder per session.

    Histograms come from the stored 20-bin counts; their sum and sum of squares are estimated from bin
    centres (the stats keep counts, not raw values). Returns the run folders written.
    """
    from tensorboardX import SummaryWriter

    store, owned = _open(storage)
    written: list[Path] = []
    try:
        sessions = [s.session_id for s in store.sessions()]
        if session_id is not None:
            if session_id not in sessions:
                raise StorageError(f"no session {session_id!r} in {storage}; known: {sessions[:10]}")
            sessions = [session_id]
        if not sessions:
            raise StorageError(f"{storage} holds no training sessions; train with a StatsListener first")
        for sid in sessions:
            run = Path(logdir) / sid
            writer = SummaryWriter(logdir=str(run))
            try:
                for r in store.query(sid, kind="update"):
                    step, p = r.iteration, r.payload
                    if r.type_id == "model":
                        for key in ("score", "examples_per_sec", "minibatches_per_sec"):
                            if p.get(key) is not None:
                                writer.add_scalar(f"train/{key}", p[key], step, walltime=r.timestamp)
                        for layer, lr in (p.get("learning_rates") or {}).items():
                            writer.add_scalar(f"learning_rate/{layer}", lr, step, walltime=r.timestamp)
                        for key, ratio in (p.get("ratios") or {}).items():
                            if ratio is not None:
                                writer.add_scalar(f"update_param_ratio_log10/{key}", ratio, step, walltime=r.timestamp)
                        for what in ("params", "updates", "gradients"):
                            for key, st in (p.get(what) or {}).items():
                                writer.add_scalar(
                                    f"{what}_mean_magnitude/{key}", st["mean_magnitude"], step, walltime=r.timestamp
                                )
                                if "histogram" in st:
                                    _histogram(writer, f"{what}/{key}", st["histogram"], step, r.timestamp)
                    if r.type_id in ("model", "worker"):
                        proc = p.get("process") or {}
                        if "rss_bytes" in proc:
                            writer.add_scalar(
                                f"system/{r.worker_id}/rss_mib", proc["rss_bytes"] / 2**20, step, walltime=r.timestamp
                            )
            finally:
                writer.close()
            written.append(run)
    finally:
        if owned:
            store.close()
    return written


def _histogram(writer: object, tag: str, h: dict[str, object], step: int, walltime: float) -> None:
    counts = [float(c) for c in h["counts"]]  # type: ignore[attr-defined]
    lo, hi = float(h["min"]), float(h["max"])  # type: ignore[arg-type]
    width = (hi - lo) / len(counts)
    centres = [lo + width * (i + 0.5) for i in range(len(counts))]
    writer.add_histogram_raw(  # type: ignore[attr-defined]
        tag,
        min=lo,
        max=hi,
        num=int(sum(counts)),
        sum=sum(c * x for c, x in zip(counts, centres, strict=True)),
        sum_squares=sum(c * x * x for c, x in zip(counts, centres, strict=True)),
        bucket_limits=[lo + width * (i + 1) for i in range(len(counts))],
        bucket_counts=counts,
        global_step=step,
        walltime=walltime,
    )
