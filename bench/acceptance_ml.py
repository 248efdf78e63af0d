"""Acceptance for the Spark ML stages: a Pipeline on a real tabular dataset shipped with scikit-learn.

StringIndexer + VectorAssembler + deepspark.ml.Standardize + DeepSparkClassifier, trained on Spark with
2 workers from a CSV file read by ``spark.read.csv``; the fitted PipelineModel is saved, loaded back
and applied to the held-out split. Its accuracy is compared with Spark ML's LogisticRegression on the
same split (StringIndexer + VectorAssembler + LogisticRegression, which standardizes internally).

Run: ``.venv/bin/python bench/acceptance_ml.py [--dataset breast_cancer|wine] [--epochs N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_csv(dataset: str, path: Path) -> list[str]:
    """The scikit-learn dataset as CSV with a string class column; returns the feature column names."""
    from sklearn import datasets

    loader = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[dataset]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_").replace("/", "_") for c in frame.columns]
    names = [str(n) for n in bunch.target_names]
    frame["target"] = [names[int(t)] for t in frame["target"]]
    frame.rename(columns={"target": "class"}).to_csv(path, index=False)
    return [c for c in frame.columns if c != "target"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=["breast_cancer", "wine"], default="breast_cancer")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42, help="seed of randomSplit and of the network")
    args = parser.parse_args()

    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
    from deepspark.ml import DeepSparkClassifier, DeepSparkModel, Standardize
    from deepspark.spark import ParameterAveraging, local_spark

    work = Path(tempfile.mkdtemp(prefix="deepspark-acceptance-ml-"))
    features = write_csv(args.dataset, work / "data.csv")
    spark = local_spark("local[2]", app_name="deepspark-acceptance-ml")
    try:
        df = spark.read.csv(str(work / "data.csv"), header=True, inferSchema=True)
        train, test = df.randomSplit([0.7, 0.3], seed=args.seed)
        train, test = train.cache(), test.cache()
        n_train, n_test = train.count(), test.count()
        n_classes = df.select("class").distinct().count()
        indexer = StringIndexer(inputCol="class", outputCol="label")
        assembler = VectorAssembler(inputCols=features, outputCol="raw")
        conf = NetworkConfig(
            seed=args.seed,
            updater=Adam(learning_rate=1e-2),
            l2=1e-4,
            input_type=InputType.feed_forward(len(features)),
            layers=(Dense(n_out=32, activation="relu"), Output(n_out=n_classes, activation="softmax", loss="mcxent")),
        )
        clf = DeepSparkClassifier(
            networkConfig=conf,
            trainingMaster=ParameterAveraging(num_workers=2, batch_size_per_worker=16, averaging_frequency=5),
            epochs=args.epochs,
        )
        pipeline = Pipeline(stages=[indexer, assembler, Standardize(inputCol="raw", outputCol="features"), clf])
        evaluator = MulticlassClassificationEvaluator(metricName="accuracy")

        t0 = time.perf_counter()
        model = pipeline.fit(train)
        fit_s = time.perf_counter() - t0
        path = str(work / "pipeline-model")
        model.write().overwrite().save(path)
        loaded = PipelineModel.load(path)
        assert isinstance(loaded.stages[-1], DeepSparkModel)
        predictions = loaded.transform(test)
        accuracy = evaluator.evaluate(predictions)
        original = np.array([r[0] for r in model.transform(test).select("prediction").collect()])
        reloaded = np.array([r[0] for r in predictions.select("prediction").collect()])

        lr_model = Pipeline(stages=[indexer, VectorAssembler(inputCols=features, outputCol="features"),
                                    LogisticRegression(maxIter=100)]).fit(train)  # fmt: skip
        baseline = evaluator.evaluate(lr_model.transform(test))
        shape = f"{len(features)} features, {n_classes} classes"
        print(f"dataset {args.dataset}: {n_train} train / {n_test} test rows, {shape}")
        print(f"deepspark Pipeline (2 workers, {args.epochs} epochs, fit {fit_s:.1f} s): saved to {path}, loaded back")
        print(f"  loaded model's predictions equal the original's: {bool(np.array_equal(original, reloaded))}")
        print(f"  test accuracy {100 * accuracy:.2f} %")
        print(f"Spark ML LogisticRegression on the same split: test accuracy {100 * baseline:.2f} %")
        verdict = "MET" if accuracy >= baseline else "NOT met"
        print(f"deepspark - baseline: {100 * (accuracy - baseline):+.2f} points ({verdict}: target >= baseline)")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
