"""RemoteStatsRouter against a real server process: delivery, and training that outlives a killed server."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.config import Dense, InputType, NetworkConfig, Output, Sgd
from deepspark.nn import Network
from deepspark.nn.listeners import IterationInfo, TrainingListener
from deepspark.stats import RemoteStatsRouter, StatsListener

from .conftest import UiServer


def _net() -> Network:
    return Network(
        NetworkConfig(
            seed=0,
            updater=Sgd(learning_rate=0.05),
            input_type=InputType.feed_forward(4),
            layers=(Dense(n_out=8, activation="tanh"), Output(n_out=2, activation="softmax", loss="mcxent")),
        )
    )


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _count(path: Path, session: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM records WHERE session_id = ?", (session,)).fetchone()[0])
    finally:
        db.close()


def test_router_delivers_every_record_to_the_server(ui_server: UiServer, tmp_path: Path) -> None:
    _, url = ui_server()
    router = RemoteStatsRouter(url, batch_size=7)
    net = _net().add_listeners(StatsListener(router, report_every=2, session_id="delivered"))
    net.fit(*_data(), epochs=1, batch_size=20)  # 20 iterations -> 10 update records + static + fit_end
    assert router.flush(timeout=30)
    router.close()
    assert (router.sent, router.dropped) == (12, 0)
    assert _count(tmp_path / "runs.db", "delivered") == 12


class _KillServer(TrainingListener):
    """Kills the UI server process at one iteration, mid-training."""

    def __init__(self, proc: Any, router: RemoteStatsRouter, at: int) -> None:
        self.proc, self.router, self.at = proc, router, at
        self.sent_before_kill = -1

    def iteration_done(self, net: Any, info: IterationInfo) -> None:
        if info.iteration == self.at:
            self.router.flush(timeout=30)
            self.sent_before_kill = self.router.sent
            self.proc.kill()
            self.proc.wait(timeout=30)


def test_router_server_killed_mid_training_training_finishes_and_drops_are_counted(
    ui_server: UiServer, tmp_path: Path
) -> None:
    proc, url = ui_server()
    router = RemoteStatsRouter(url, timeout=0.5, max_retries=2)
    killer = _KillServer(proc, router, at=10)
    net = _net().add_listeners(StatsListener(router, report_every=2, session_id="killed"), killer)
    net.fit(*_data(), epochs=2, batch_size=20)  # 40 iterations: 22 records, 7 before the kill
    assert net.iteration == 40, "training must finish although the server died"
    router.close(timeout=30)
    assert killer.sent_before_kill == 7
    assert router.sent == 7 and router.dropped == 22 - 7
    assert router.last_error is not None and router.failed_requests >= 1
    assert _count(tmp_path / "runs.db", "killed") == 7


def test_router_full_queue_drops_new_records_and_never_blocks() -> None:
    router = RemoteStatsRouter("http://127.0.0.1:9", queue_size=3, timeout=0.2, max_retries=1)  # port 9: refused
    from deepspark.stats import StatsRecord

    router.put([StatsRecord("q", "model", "driver", iteration=i) for i in range(10)])
    router.close(timeout=10)
    assert router.sent == 0 and router.dropped == 10
