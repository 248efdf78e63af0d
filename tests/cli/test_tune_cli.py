"""`deepspark tune`: bad search files fail with one line and exit code 2, before Spark starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepspark.cli.main import main


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"space": {}, "network": {}, "budget": 3}), "unknown key(s) ['budget']"),
        (json.dumps({"space": {"lr": {"type": "log_uniform", "low": 1, "high": 0.1}}, "network": {}}), "space.lr.high"),
        (json.dumps({"space": {}, "network": {"type": "network"}}), "the search space is empty"),
        (
            json.dumps(
                {
                    "space": {"u": {"type": "choice", "options": [4]}},
                    "network": {"type": "network"},
                    "search": {"metric": "acc"},
                }
            ),
            "search.metric: unknown metric 'acc'",
        ),
        (
            json.dumps(
                {
                    "space": {"u": {"type": "choice", "options": [4]}},
                    "network": {"type": "dense", "n_out": {"$param": "v"}},
                    "search": {"max_trials": 1},
                }
            ),
            "the template reads parameter 'v'",
        ),
    ],
)
def test_tune_with_a_bad_search_file_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "search.json"
    path.write_text(content)
    assert main(["tune", "--config", str(path), "--data", str(tmp_path / "none.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepspark tune: error:") and message in err


def test_tune_without_the_search_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--config", str(tmp_path / "missing.json"), "--data", "x"]) == 2
    assert "no such search file" in capsys.readouterr().err
