"""What a new user meets first on the command line: --version, help with defaults, no silent overwrite,
Parquet for evaluate, a mistyped stats path as an error, and the demo's advice explained."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import deepspark
from deepspark.cli.demo import SMALL_DATA_NOTE, advice_lines, averaging_frequency
from deepspark.cli.main import build_parser, main
from deepspark.cli.paths import check_new_output, existing_storage
from deepspark.errors import DeepSparkError, StorageError


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(_subparsers(sub, f"{prefix}{name} "))
    return found


def test_cli_version_prints_deepspark_and_torch_versions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"deepspark {deepspark.__version__}")
    assert "torch " in out and "pyspark " in out


def test_cli_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    commands = _subparsers(build_parser())
    assert {"demo", "train", "evaluate", "summary", "ui", "report", "stats export-tensorboard"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help, f"deepspark {name} {label}: no help text"
            if action.option_strings and action.default not in (None, False, "", argparse.SUPPRESS):
                shown = f"default: {action.default}"
                assert shown in " ".join(text.split()), f"deepspark {name} {label}: '{shown}' not in --help"


def test_cli_train_refuses_to_overwrite_existing_output_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "model.zip"
    existing.write_bytes(b"an earlier model")
    # config and data do not even exist: the output check comes first, before any file is read or Spark starts
    code = main(["train", "--config", "c.json", "--data", "d.parquet", "--output", str(existing)])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert existing.read_bytes() == b"an earlier model"


def test_check_new_output_allows_overwrite_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    assert check_new_output(path, overwrite=False) == path  # new file: fine
    path.write_bytes(b"x")
    with pytest.raises(DeepSparkError, match="already exists"):
        check_new_output(path, overwrite=False)
    assert check_new_output(path, overwrite=True) == path
    with pytest.raises(DeepSparkError, match="is a folder"):
        check_new_output(tmp_path, overwrite=True)
    with pytest.raises(DeepSparkError, match="is a file"):
        check_new_output(path / "inside.zip", overwrite=False)


def test_cli_ui_with_mistyped_storage_is_an_error_naming_the_close_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "runs.db").write_bytes(b"")
    typo = tmp_path / "run.db"
    assert main(["ui", "--storage", str(typo), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path / "runs.db") in err and "--create" in err
    assert not typo.exists(), "a mistyped path must not leave an empty database behind"
    assert main(["report", str(typo)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_existing_storage_create_needs_an_existing_folder(tmp_path: Path) -> None:
    assert existing_storage(tmp_path / "new.db", create=True) == tmp_path / "new.db"
    with pytest.raises(StorageError, match=r"folder .* does not exist"):
        existing_storage(tmp_path / "missing" / "new.db", create=True)
    with pytest.raises(StorageError, match="is a folder"):
        existing_storage(tmp_path, create=True)


def test_cli_rejects_non_positive_epochs_as_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "0"])
    assert info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
    from deepspark.nn import Network

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    conf = NetworkConfig(
        seed=0, updater=Adam(learning_rate=0.05), input_type=InputType.feed_forward(3),
        layers=(Dense(n_out=8, activation="relu"), Output(n_out=2)),
    )
    net = Network(conf)
    net.fit(x, y, epochs=20, batch_size=30)
    path = tmp_path_factory.mktemp("eval") / "m.zip"
    net.save(path)
    return path, x, y


@pytest.mark.parametrize("layout", ["array_file", "columns_folder", "vector_file"])
def test_cli_evaluate_reads_parquet_like_train(
    layout: str,
    small_archive: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepspark.nn import Network

    archive, x, y = small_archive
    expected = Network.load(archive).evaluate(x, y).accuracy()
    args = ["evaluate", str(archive)]
    if layout == "array_file":
        pq.write_table(pa.table({"features": [r.tolist() for r in x], "label": y}), tmp_path / "d.parquet")
        args += ["--data", str(tmp_path / "d.parquet")]
    elif layout == "columns_folder":  # a folder of part files, as Spark writes it; Spark ML's double labels
        (tmp_path / "d").mkdir()
        cols = {f"f{i}": x[:, i] for i in range(3)}
        for part in range(2):
            rows = slice(part * 60, (part + 1) * 60)
            table = pa.table({**{k: v[rows] for k, v in cols.items()}, "y": y[rows].astype(np.float64)})
            pq.write_table(table, tmp_path / "d" / f"part-{part}.parquet")
        args += ["--data", str(tmp_path / "d"), "--features-col", "f0,f1,f2", "--label-col", "y"]
    else:  # Spark ML dense vectors: struct<type, size, indices, values>
        vec = pa.array(
            [{"type": 1, "size": None, "indices": None, "values": r.astype(np.float64).tolist()} for r in x],
            pa.struct([("type", pa.int8()), ("size", pa.int32()), ("indices", pa.list_(pa.int32())),
                       ("values", pa.list_(pa.float64()))]),
        )
        pq.write_table(pa.table({"features": vec, "label": y}), tmp_path / "v.parquet")
        args += ["--data", str(tmp_path / "v.parquet")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"Accuracy:        {expected:.4f}" in out
    assert "# of examples:   120" in out


def test_cli_evaluate_parquet_missing_column_lists_available_ones(
    small_archive: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    archive, x, y = small_archive
    pq.write_table(pa.table({"pixels": [r.tolist() for r in x], "label": y}), tmp_path / "d.parquet")
    assert main(["evaluate", str(archive), "--data", str(tmp_path / "d.parquet")]) == 2
    err = capsys.readouterr().err
    assert "['features'] not found" in err and "pixels" in err and "--features-col" in err


@dataclass(frozen=True)
class _Finding:
    """The fields of a training-advice finding that the demo prints."""

    severity: str
    title: str = "Workers wait for the driver"
    detail: str = "raise averaging_frequency"


def _finding(severity: str) -> _Finding:
    return _Finding(severity)


def test_demo_advice_explains_warnings_that_its_small_data_earns() -> None:
    lines = advice_lines([_finding("warning"), _finding("info")], n_train=1438)
    assert lines[0] == "advice:"
    assert lines[1].strip() == SMALL_DATA_NOTE.format(n_train=1438)
    assert "1,438 training images" in lines[1] and "--no-spark" in lines[1]
    assert lines[2].startswith("  [warning] Workers wait for the driver")
    # no warning, no note
    assert advice_lines([_finding("info")], n_train=1438) == ["advice:", lines[3]]


def test_demo_averaging_frequency_gives_two_rounds_per_epoch() -> None:
    # 1,438 digits on 2 workers: 719 each, 23 minibatches of 32 -> average every 12
    assert averaging_frequency(1438, 2) == 12
    assert averaging_frequency(10, 4) == 1
