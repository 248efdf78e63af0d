"""Acceptance figures of model import: a Keras CNN trained in Keras, imported, fine-tuned on Spark; ResNet50 import time.

Run: ``.venv/bin/python bench/acceptance_keras.py [--mnist DIR] [--keras-epochs 3] [--finetune-epochs 2]``.

1. A Keras CNN (Keras 3, torch backend) trains on the MNIST test-set split (first 8,000 images) and is
   evaluated on the last 2,000; it is saved as ``.keras`` and ``.h5``.
2. Both files are imported with ``import_keras``; the imported network is evaluated on the same 2,000
   images (accuracy must equal Keras', predictions must agree).
3. The imported network is fine-tuned for 2 epochs on Spark (``local[2]``, ParameterAveraging or
   GradientSharing) and evaluated again (accuracy must not drop).
4. Keras' own ResNet50 (random weights, 25.6M parameters) is saved as ``.keras``; its import is timed
   (median of 3) and its output compared with Keras' on two images.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mnist_arg, mnist_split

from deepspark.config import Adam
from deepspark.modelimport import import_keras, inspect_keras
from deepspark.nn import Network


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.1f} (5 min {five:.1f})"


def _keras() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras
    return keras


def keras_cnn(keras: Any) -> Any:
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(64, activation="relu"),
            L.Dropout(0.3),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    return model


def frame(spark: Any, x: np.ndarray, y: np.ndarray) -> Any:
    import pyarrow as pa

    values = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), x.shape[1])
    table = pa.table({"features": values.cast(pa.list_(pa.float32())), "label": pa.array(y.astype(np.int64))})
    df = spark.createDataFrame(table).repartition(2).persist()
    df.count()
    return df


def part_mnist(args: argparse.Namespace, keras: Any, folder: Path) -> None:
    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    images_train, images_test = x_train.reshape(-1, 28, 28, 1), x_test.reshape(-1, 28, 28, 1)
    keras.utils.set_random_seed(0)
    model = keras_cnn(keras)
    t0 = time.perf_counter()
    model.fit(images_train, y_train, epochs=args.keras_epochs, batch_size=64, verbose=0)
    probs = model.predict(images_test, verbose=0)
    keras_acc = float((probs.argmax(1) == y_test).mean())
    print(f"Keras CNN trained {args.keras_epochs} epochs in {time.perf_counter() - t0:.0f} s: test accuracy "
          f"{keras_acc:.4f} ({_load()})", flush=True)
    for fmt in ("keras", "h5"):
        path = folder / f"mnist_cnn.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        t0 = time.perf_counter()
        net = import_keras(path)
        seconds = time.perf_counter() - t0
        ours = net.output(x_test)  # flat rows: (h, w, c) order, as Keras' arrays hold them
        acc = net.evaluate(x_test, y_test).accuracy()
        agree = int((np.asarray(ours).argmax(1) == probs.argmax(1)).sum())
        print(f"imported .{fmt} in {seconds:.2f} s: test accuracy {acc:.4f} (Keras {keras_acc:.4f}, "
              f"{'equal' if acc == keras_acc else 'DIFFERENT'}), argmax agrees on {agree}/{len(y_test)}, "
              f"max |p - p_keras| = {np.abs(np.asarray(ours) - probs).max():.2e}", flush=True)
    print(inspect_keras(folder / "mnist_cnn.keras").table())
    finetune(args, net, x_train, y_train, x_test, y_test, keras_acc)


def finetune(
    args: argparse.Namespace, net: Network, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
    y_test: np.ndarray, keras_acc: float,
) -> None:
    from deepspark.spark import GradientSharing, ParameterAveraging, SparkNetwork, local_spark

    # Fine-tuning practice: a smaller learning rate than the original training (Keras' Adam moments are not imported).
    if net.config is None:
        raise SystemExit("the imported network has no config")
    tuned = Network(dataclasses.replace(net.config, updater=Adam(learning_rate=args.finetune_lr)))
    tuned.set_params(net.params())
    if args.master == "sharing":
        master: Any = GradientSharing(batch_size_per_worker=32, num_workers=2, encoding="dense")
    else:
        master = ParameterAveraging(num_workers=2, batch_size_per_worker=32, averaging_frequency=5, seed=0)
    spark = local_spark("local[2]", app_name="deepspark-acceptance-keras")
    try:
        train_df, test_df = frame(spark, x_train, y_train), frame(spark, x_test, y_test)
        spark_net = SparkNetwork(spark, tuned, master)
        before = spark_net.evaluate(test_df).accuracy()
        t0 = time.perf_counter()
        spark_net.fit(train_df, epochs=args.finetune_epochs)
        wall = time.perf_counter() - t0
        after = spark_net.evaluate(test_df).accuracy()
        verdict = "not lower" if after >= before else "LOWER"
        print(f"fine-tuned {args.finetune_epochs} epochs on Spark local[2] ({type(master).__name__}, Adam "
              f"lr {args.finetune_lr}) in {wall:.0f} s: test accuracy {before:.4f} -> {after:.4f} ({verdict}; "
              f"Keras {keras_acc:.4f}) ({_load()})", flush=True)
    finally:
        spark.stop()


def part_resnet(keras: Any, folder: Path) -> None:
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.applications.ResNet50(weights=None)
        path = folder / "resnet50.keras"
        model.save(path)
    size = path.stat().st_size / 2**20
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        net = import_keras(path)
        times.append(time.perf_counter() - t0)
    print(f"ResNet50 .keras ({size:.0f} MiB, {model.count_params():,} Keras parameters, "
          f"{net.flat.n_trainable:,} trainable here): import {np.median(times):.2f} s median of 3 "
          f"({', '.join(f'{t:.2f}' for t in times)}) ({_load()})", flush=True)
    x = np.random.default_rng(0).random((2, 224, 224, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.predict(x, verbose=0)
    diff = np.abs(np.asarray(net.output(x)) - expected).max()
    print(f"ResNet50 output vs Keras on 2 images: max |difference| {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mnist_arg(parser)
    parser.add_argument("--keras-epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-lr", type=float, default=2e-4)
    parser.add_argument("--master", choices=["averaging", "sharing"], default="averaging")
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    keras = _keras()
    with tempfile.TemporaryDirectory(prefix="deepspark-keras-acceptance-") as tmp:
        part_mnist(args, keras, Path(tmp))
        if not args.skip_resnet:
            part_resnet(keras, Path(tmp))


if __name__ == "__main__":
    main()
