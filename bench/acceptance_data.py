"""Issue 6 acceptance, data half: (1) a CNN trained on Spark from a folder of MNIST PNGs read through binaryFile;
(2) an LSTM trained on Spark on variable-length sequences built from the digits (rows of an image as time steps).

Run: ``.venv/bin/python bench/acceptance_data.py [--mnist DIR] [--only images,sequences] [--epochs-cnn 8]``.

(1) writes the 10,000 MNIST test images as ``<digit>/<index>.png`` into a temporary folder (deleted at the
end; nothing is committed), reads it with ``read_images`` (decoding on the executors), trains LeNet with
ParameterAveraging on 2 workers (local[2]) on images 0..7,999 and evaluates on the held-out 8,000..9,999.
(2) turns each 8x8 digit into 8 time steps of 8 pixels, drops 0..3 trailing rows at random (lengths 5..8:
masks matter), splits 80/20 stratified with ``deepspark.data.tabular.train_test_split`` and trains
LSTM -> LastTimeStep -> softmax with ParameterAveraging on 2 workers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lenet_config, mnist_arg

from deepspark.config import LSTM, Adam, InputType, NetworkConfig, Output
from deepspark.config.layers import LastTimeStep
from deepspark.data import load_digits, load_mnist
from deepspark.spark import ParameterAveraging, SparkNetwork, local_spark


def write_pngs(x: np.ndarray, y: np.ndarray, root: Path) -> None:
    from PIL import Image

    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8)).save(folder / f"{i:05d}.png")


def images(spark: object, mnist: Path, epochs: int) -> None:
    from pyspark.sql import functions as F

    from deepspark.data.images import read_images

    x, y = load_mnist(mnist, kind="t10k", flatten=True, normalize=False)
    root = Path(tempfile.mkdtemp(prefix="deepspark-mnist-png-"))
    try:
        t0 = time.perf_counter()
        write_pngs(x, y, root)
        print(f"wrote {len(x)} PNGs under {root} ({time.perf_counter() - t0:.0f} s)")
        t0 = time.perf_counter()
        folder = read_images(spark, str(root), height=28, width=28, scale=1 / 255, glob="*.png")  # type: ignore[arg-type]
        index = F.regexp_extract("path", r"(\d+)\.png$", 1).cast("int")
        data = folder.data.withColumn("index", index).persist()
        report = folder.report()
        print(f"read_images: labels {list(folder.labels)}; {report} ({time.perf_counter() - t0:.0f} s)")
        train = data.filter(F.col("index") < 8000).repartition(2)
        test = data.filter(F.col("index") >= 8000)
        conf = lenet_config(seed=0)
        assert conf.input_type == folder.input_type
        master = ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=5, seed=0)
        spark_net = SparkNetwork(spark, conf, master)  # type: ignore[arg-type]
        spark_net.network.labels = folder.labels
        t0 = time.perf_counter()
        spark_net.fit(train, "features", "label", epochs=epochs)
        fit_s = time.perf_counter() - t0
        evaluation = spark_net.evaluate(test, "features", "label")
        print(
            f"IMAGES: LeNet on {train.count()} PNGs via binaryFile, 2 workers, {epochs} epochs ({fit_s:.0f} s): "
            f"held-out {evaluation.num_examples()} accuracy {evaluation.accuracy():.4f}"
        )
        data.unpersist()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sequences(spark: object, epochs: int) -> None:
    import pandas as pd

    from deepspark.data.tabular import train_test_split

    x, y = load_digits(normalize=True)
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 9, len(x))
    steps = [img.reshape(8, 8)[:t].astype(np.float64).tolist() for img, t in zip(x, lengths, strict=True)]
    pdf = pd.DataFrame({"id": np.arange(len(x)), "steps": steps, "label": y.astype(np.int64)})
    df = spark.createDataFrame(pdf, "id long, steps array<array<double>>, label long").persist()  # type: ignore[attr-defined]
    train, test = train_test_split(df, 0.2, seed=0, stratify_col="label")
    train = train.repartition(2).persist()
    conf = NetworkConfig(
        seed=0,
        updater=Adam(learning_rate=5e-3),
        input_type=InputType.recurrent(8),
        layers=(LSTM(n_out=64), LastTimeStep(), Output(n_out=10, activation="softmax", loss="mcxent")),
    )
    master = ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=5, seed=0)
    spark_net = SparkNetwork(spark, conf, master)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    spark_net.fit(train, "steps", "label", epochs=epochs)
    fit_s = time.perf_counter() - t0
    evaluation = spark_net.evaluate(test, "steps", "label")
    from deepspark.data.sequences import sequences_to_arrays
    from deepspark.nn import Network

    x_tr, y_tr, m_tr, _ = sequences_to_arrays(train, "steps", "label")
    x_te, y_te, m_te, _ = sequences_to_arrays(test, "steps", "label")
    t0 = time.perf_counter()
    single = Network(conf)
    single.fit(x_tr, y_tr, epochs=epochs, batch_size=64, features_mask=m_tr)
    single_s = time.perf_counter() - t0
    single_acc = float((np.argmax(single.output(x_te, features_mask=m_te), axis=1) == y_te).mean())
    print(f"single machine, same split and network, batch 64, {epochs} epochs ({single_s:.0f} s): {single_acc:.4f}")
    print(
        f"SEQUENCES: LSTM(64) on digits rows as 5..8 time steps, {train.count()} train / {test.count()} test "
        f"(stratified), 2 workers, {epochs} epochs ({fit_s:.0f} s): test accuracy {evaluation.accuracy():.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mnist_arg(parser)
    parser.add_argument("--only", default="images,sequences")
    parser.add_argument("--epochs-cnn", type=int, default=8)
    parser.add_argument("--epochs-lstm", type=int, default=30)
    args = parser.parse_args()
    spark = local_spark("local[2]", app_name="deepspark-acceptance-data")
    try:
        if "sequences" in args.only:
            sequences(spark, args.epochs_lstm)
        if "images" in args.only:
            images(spark, args.mnist, args.epochs_cnn)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
