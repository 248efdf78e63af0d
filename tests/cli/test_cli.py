"""The ``deepspark`` command: exit codes and output of demo, summary and evaluate."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from deepspark.cli.main import main
from deepspark.config import Dense, InputType, NetworkConfig, Output


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--no-spark", "--epochs", "1", "--output", str(out)]) == 0
    return out / "digits-cnn.zip"


def test_cli_demo_trains_evaluates_and_writes_an_archive(demo_archive: Path) -> None:
    assert demo_archive.exists()
    assert demo_archive.stat().st_size > 1000


def test_cli_summary_of_archive_lists_layers_and_memory(demo_archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(demo_archive), "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D" in out and "Output" in out
    assert "total params" in out
    assert "memory estimate at batch size 64" in out


def test_cli_summary_of_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(4), layers=(Dense(n_out=3), Output(n_out=2)))
    path = tmp_path / "conf.json"
    path.write_text(conf.to_json())
    assert main(["summary", str(path)]) == 0
    assert "ff(4) -> ff(3)" in capsys.readouterr().out


def test_cli_evaluate_on_digits_prints_accuracy(demo_archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(demo_archive), "--data", "digits", "--limit", "300"]) == 0
    out = capsys.readouterr().out
    assert "Accuracy" in out


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["summary", "does-not-exist.zip"], "no such file"),
        (["evaluate", "missing.zip", "--data", "digits"], "missing.zip"),
    ],
)
def test_cli_missing_file_exits_2_with_one_line(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err
    assert "\n" not in err and "Traceback" not in err


def test_cli_corrupt_archive_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1


def test_cli_invalid_config_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conf.json"
    path.write_text('{"type": "network", "layers": [{"type": "dense", "n_out": 0}], "input_type": '
                    '{"type": "input_type", "form": "feed_forward", "size": 3}}')
    assert main(["summary", str(path)]) == 2
    assert "layers[0].n_out" in capsys.readouterr().err


def test_cli_evaluate_csv_without_label_col_exits_2(
    demo_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    assert main(["evaluate", str(demo_archive), "--data", str(csv)]) == 2
    assert "--label-col" in capsys.readouterr().err


def test_cli_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2


def test_cli_rl_train_locally_with_stats_then_bad_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, db = tmp_path / "a2c.zip", tmp_path / "runs.db"
    argv = ["rl", "train", "--env", "CartPole-v1", "--algo", "a2c", "--steps", "400", "--output", str(out),
            "--stats", str(db), "--eval-episodes", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert out.exists() and db.exists() and "a2c on CartPole-v1: mean return" in captured.out
    assert "steps/s" in captured.err  # the progress bar
    assert main(["rl", "train", "--env", "CartPol-v1", "--output", str(out)]) == 2
    assert "close matches: CartPole-v1" in capsys.readouterr().err
    assert main(["rl", "train", "--env", "Pendulum-v1", "--algo", "dqn", "--output", str(out)]) == 2
    assert "DQN needs a discrete action space" in capsys.readouterr().err


def test_cli_summary_negative_batch_size_is_an_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = NetworkConfig(input_type=InputType.feed_forward(4), layers=(Output(n_out=2),))
    path = tmp_path / "conf.json"
    path.write_text(conf.to_json())
    with pytest.raises(SystemExit) as info:
        main(["summary", str(path), "--batch-size", "-5"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "--batch-size: expected an integer >= 0, got -5" in captured.err
    assert "ff(4)" not in captured.out  # nothing was printed before the refusal


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_ui_main_bad_port_is_an_argparse_error_without_traceback(
    port: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepspark.ui.__main__ import main as ui_main

    with pytest.raises(SystemExit) as info:
        ui_main(["--storage", str(tmp_path / "runs.db"), "--port", port])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--port: expected a port number 0..65535" in err and "Traceback" not in err
    assert not (tmp_path / "runs.db").exists()


def _main_with_deadline(argv: list[str], fifo: Path) -> int:
    """``main(argv)`` in a thread; if it blocks on ``fifo`` past the deadline, unblock it by writing, then fail."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        with open(fifo, "wb"):  # a writer arrives: the blocked open() returns and the command ends
            pass
        worker.join(timeout=60)
        pytest.fail(f"deepspark {' '.join(argv)} blocked on the FIFO instead of refusing it")
    return result[0]


@pytest.mark.parametrize("name", ["model.zip", "conf.json"])
def test_cli_summary_fifo_path_exits_2_without_opening(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    assert _main_with_deadline(["summary", str(fifo)], fifo) == 2
    err = capsys.readouterr().err.strip()
    assert "FIFO (named pipe), not a regular file" in err
    assert str(fifo) in err and "\n" not in err


def test_cli_summary_folder_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.zip").mkdir()
    assert main(["summary", str(tmp_path / "model.zip")]) == 2
    assert "is a folder, not a regular file" in capsys.readouterr().err
