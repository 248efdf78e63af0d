"""Issue 14 acceptance: hyperparameter search on Spark (ASHA) vs Hyperopt's SparkTrials on the same objective.

Run: ``.venv/bin/python bench/acceptance_tune.py [--mnist DIR] [--trials 24] [--epochs 8] [--output DIR]``.

MNIST test set split 8,000 / 2,000 (the last 2,000 score the trials: the search selects on them and reports
the best), an MLP space like the issue's (learning rate, units 128/256/512, dropout, layers, plus input dropout;
Adam whose learning rate decays by 0.7 per epoch), minibatches of 32, local[2]. Each contender runs
in a fresh process: ``deepspark.tune.Search`` with TPE + ASHA, then Hyperopt ``SparkTrials`` with TPE running the
same objective (same networks, same epochs, no pruning). Hyperopt is installed for this benchmark only
(``pip install hyperopt``); when it cannot run with this pyspark the error is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mnist_arg, mnist_split

from deepspark.config import Adam, Dense, ExponentialSchedule, InputType, NetworkConfig, Output

UNITS = [128, 256, 512]
BATCH = 32
LR_DECAY = 0.7  # the learning rate shrinks by this factor after every epoch


def build(p: dict) -> NetworkConfig:
    """The MLP of one trial: ``layers`` hidden layers of ``units``; ``input_dropout`` on the pixels, ``dropout`` on
    the hidden layers' inputs."""
    hidden = tuple(
        Dense(n_out=int(p["units"]), activation="relu", dropout=float(p["dropout"] if i else p["input_dropout"]))
        for i in range(int(p["layers"]))
    )
    return NetworkConfig(
        seed=0,
        updater=Adam(learning_rate=ExponentialSchedule(initial=float(p["lr"]), gamma=LR_DECAY, schedule_type="epoch")),
        input_type=InputType.feed_forward(784),
        layers=(*hidden, Output(n_out=10, activation="softmax", loss="mcxent", dropout=float(p["dropout"]))),
    )


def frames(spark, x, y):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), x.shape[1])
    table = pa.table({"features": feats.cast(pa.list_(pa.float32())), "label": pa.array(y.astype(np.int64))})
    return spark.createDataFrame(table.to_pandas()).repartition(2)


def run_tune(args: argparse.Namespace) -> dict:
    from deepspark.spark import local_spark
    from deepspark.stats import SQLiteStatsStorage
    from deepspark.tune import Choice, IntRange, LogUniform, Search, Uniform

    x, y, xt, yt = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="acceptance-tune")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "search.journal"
    for stale in (journal, out / "search-stats.db"):
        stale.unlink(missing_ok=True)
    stats = SQLiteStatsStorage(out / "search-stats.db")
    space = {
        "lr": LogUniform(1e-4, 1e-1),
        "units": Choice(UNITS),
        "dropout": Uniform(0.0, 0.5),
        "layers": IntRange(1, 3),
        "input_dropout": Uniform(0.0, 0.3),
    }
    train_df, val_df = frames(spark, x, y).cache(), frames(spark, xt, yt).cache()
    train_df.count(), val_df.count()
    t0 = time.perf_counter()
    search = Search(
        spark,
        build,
        space,
        metric="accuracy",
        mode="max",
        sampler="tpe",
        pruner="asha",
        max_trials=args.trials,
        max_epochs=args.epochs,
        parallelism=None,
        storage=journal,
        stats_storage=stats,
        batch_size=BATCH,
        seed=0,
    )
    result = search.fit(
        train_df,
        val_df,
        features_col="features",
        label_col="label",
        on_trial=lambda t: print(
            f"  trial {t.number:2d} {t.state:9s} epochs {t.epochs} "
            f"score {t.score if t.score is not None else float('nan'):.4f} "
            f"{t.seconds:5.1f} s",
            flush=True,
        ),
    )
    wall = time.perf_counter() - t0
    net = result.best_network
    test_acc = net.evaluate(xt, yt).accuracy()
    frame = result.trials_frame()
    chunks = [c for t in result.trials() for c in t.user_attrs.get("chunk_seconds", [])]
    overhead = sorted(d - w for d, w in chunks)
    stats.close()
    spark.stop()
    return {
        "contender": "deepspark.tune Search (TPE + ASHA)",
        "wall_s": round(wall, 1),
        "best_score": round(result.best_score, 4),
        "best_test_accuracy": round(test_acc, 4),
        "best_params": result.best_params,
        "epochs_run": result.epochs_run(),
        "epochs_budget": args.trials * args.epochs,
        "states": frame["state"].value_counts().to_dict(),
        "chunks": len(chunks),
        "chunk_overhead_median_s": round(overhead[len(overhead) // 2], 3) if overhead else None,
        "chunk_overhead_total_s": round(sum(overhead), 1),
        "load_avg": os.getloadavg(),
    }


def run_hyperopt(args: argparse.Namespace) -> dict:
    import numpy as np

    from deepspark.spark import local_spark

    x, y, xt, yt = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="acceptance-hyperopt")
    try:
        from hyperopt import STATUS_OK, SparkTrials, fmin, hp, tpe
    except ImportError as e:
        return {"contender": "hyperopt SparkTrials", "error": f"hyperopt is not installed ({e}); pip install hyperopt"}
    epochs = args.epochs

    def objective(p: dict) -> dict:
        from deepspark.nn import Network

        net = Network(build(p))
        net.fit(x, y, epochs=epochs, batch_size=BATCH)
        return {"loss": -net.evaluate(xt, yt).accuracy(), "status": STATUS_OK}

    space = {
        "lr": hp.loguniform("lr", np.log(1e-4), np.log(1e-1)),
        "units": hp.choice("units", UNITS),
        "dropout": hp.uniform("dropout", 0.0, 0.5),
        "layers": hp.quniform("layers", 1, 3, 1),
        "input_dropout": hp.uniform("input_dropout", 0.0, 0.3),
    }
    t0 = time.perf_counter()
    try:
        trials = SparkTrials(parallelism=2, spark_session=spark)
        fmin(
            objective,
            space,
            algo=tpe.suggest,
            max_evals=args.trials,
            trials=trials,
            rstate=np.random.default_rng(0),
            show_progressbar=False,
        )
    except Exception as e:  # report, do not hide: SparkTrials may not support this pyspark
        return {
            "contender": "hyperopt SparkTrials",
            "error": f"{type(e).__name__}: {e}"[:2000],
            "wall_s": round(time.perf_counter() - t0, 1),
            "load_avg": os.getloadavg(),
        }
    wall = time.perf_counter() - t0
    losses = [v for v in trials.losses() if v is not None]
    spark.stop()
    return {
        "contender": "hyperopt SparkTrials (TPE, no pruning)",
        "wall_s": round(wall, 1),
        "best_score": round(-min(losses), 4) if losses else None,
        "trials_ok": len(losses),
        "epochs_run": len(losses) * epochs,
        "load_avg": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "deepspark-acceptance-tune"))
    parser.add_argument("--only", default="tune,hyperopt")
    parser.add_argument("--contender", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        result = run_tune(args) if args.contender == "tune" else run_hyperopt(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for name in args.only.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--contender",
            name,
            "--mnist",
            str(args.mnist),
            "--trials",
            str(args.trials),
            "--epochs",
            str(args.epochs),
            "--output",
            args.output,
        ]
        print(f"== {name} (fresh process), load avg {os.getloadavg()}", flush=True)
        log_path = Path(args.output) / f"{name}.log"
        Path(args.output).mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:  # the contender's own output, to follow a long run
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append(json.loads(line[7:]))
                print(line, flush=True)
            else:
                print(line, flush=True)
        if proc.returncode:
            print(log_path.read_text()[-3000:], flush=True)
    for r in results:
        print(json.dumps(r), flush=True)
    tune = next((r for r in results if r["contender"].startswith("deepspark")), None)
    if tune:
        frac = tune["epochs_run"] / tune["epochs_budget"]
        print(
            f"ACCEPTANCE best test accuracy {tune['best_test_accuracy']:.4f} (target >= 0.970); epochs run "
            f"{tune['epochs_run']}/{tune['epochs_budget']} = {frac:.1%} (target <= 45%); wall {tune['wall_s']} s; "
            f"load avg {tune['load_avg']}"
        )


if __name__ == "__main__":
    main()
