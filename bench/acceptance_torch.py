"""Acceptance figures of "bring your own PyTorch model": a ResNet-style nn.Module (conv + BatchNorm + residual add).

1. accuracy: the module as ``ModuleConfig`` on the MNIST split (8k train / 2k test from the t10k files), 2 workers,
   ``GradientSharing(encoding="dense")``, batch 32 per worker, 5 epochs (target >= 98.5 %).
2. throughput: the same network as ``ModuleConfig`` and as built-in layers (a ``GraphConfig`` with Conv2D,
   BatchNorm, ElementWise add, GlobalPooling): samples/s of epoch 2 on Spark, each contender in a fresh process,
   alternating, median of 3 (target: within 5 %).
3. onnx: max abs difference of onnxruntime vs torch over the 2k test rows, for LeNet and the module
   (target <= 1e-5), and onnxruntime inference rows/s.

Run: ``.venv/bin/python bench/acceptance_torch.py [--mnist DIR] [--part all|accuracy|throughput|onnx]``.
Every result line carries the load average (this machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))  # the test package that holds the ResNet-style module
from common import frame, lenet_config, mnist_arg, mnist_split  # noqa: E402

from deepspark.config import (  # noqa: E402
    Activation,
    Adam,
    BatchNorm,
    Conv2D,
    ElementWise,
    ExponentialSchedule,
    GlobalPooling,
    GraphConfig,
    InputType,
    LayerVertex,
    ModuleConfig,
    Output,
    Subsampling,
)
from deepspark.nn import Callback, FitLoop, Network  # noqa: E402

CHANNELS, BLOCKS, POOL, SEED = 16, 1, 7, 1  # POOL: average-pool the 14x14 maps to POOL x POOL
LR = ExponentialSchedule(initial=2e-3, gamma=0.6, schedule_type="epoch")


def load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def module_config() -> ModuleConfig:
    return ModuleConfig(
        factory="deepspark_testmodels.resnet:small_resnet",
        kwargs={"classes": 10, "channels": CHANNELS, "blocks": BLOCKS, "pool": POOL},
        input_shape=(1, 28, 28), n_out=10, loss="mcxent", updater=Adam(learning_rate=LR), seed=SEED,
    )


def layers_config() -> GraphConfig:
    """SmallResNet written with built-in layers: the same convolutions, batch norms, residual adds and head."""

    def conv(name: str, src: str) -> LayerVertex:
        return LayerVertex(name=name, inputs=(src,), layer=Conv2D(n_out=CHANNELS, kernel=(3, 3), padding=(1, 1),
                                                                   has_bias=False))

    def bn(name: str, src: str) -> LayerVertex:
        return LayerVertex(name=name, inputs=(src,), layer=BatchNorm(decay=0.9, eps=1e-5))

    def relu(name: str, src: str) -> LayerVertex:
        return LayerVertex(name=name, inputs=(src,), layer=Activation(activation="relu"))

    vertices = [conv("stem", "x"), bn("stem_bn", "stem"), relu("stem_relu", "stem_bn"),
                LayerVertex(name="pool", inputs=("stem_relu",), layer=Subsampling(kernel=(2, 2), stride=(2, 2)))]
    src = "pool"
    for b in range(BLOCKS):
        p = f"b{b}_"
        vertices += [conv(p + "c1", src), bn(p + "n1", p + "c1"), relu(p + "r1", p + "n1"), conv(p + "c2", p + "r1"),
                     bn(p + "n2", p + "c2"), ElementWise(name=p + "add", inputs=(src, p + "n2"), op="add"),
                     relu(p + "out", p + "add")]
        src = p + "out"
    k = 14 // POOL
    head = GlobalPooling(pooling="avg") if POOL == 1 else Subsampling(kernel=(k, k), stride=(k, k), pooling="avg")
    vertices += [LayerVertex(name="head_pool", inputs=(src,), layer=head),
                 LayerVertex(name="out", inputs=("head_pool",), layer=Output(n_out=10, loss="mcxent"))]
    return GraphConfig(inputs=("x",), input_types=(InputType.convolutional_flat(28, 28, 1),), vertices=tuple(vertices),
                       outputs=("out",), updater=Adam(learning_rate=LR), seed=SEED)


def ship(spark: Any, folder: Path) -> None:
    """Send the test model package to the executors as a zip (what a user does with their own package)."""
    import zipfile

    zip_path = folder / "deepspark_testmodels.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted((HERE.parent / "tests" / "support" / "deepspark_testmodels").glob("*.py")):
            zf.write(path, f"deepspark_testmodels/{path.name}")
    spark.sparkContext.addPyFile(str(zip_path))


class EpochClock(Callback):
    """Wall-clock time at every epoch end (validation excluded: none is run in the throughput runs)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_fit_start(self, loop: FitLoop) -> None:
        self.times = [time.perf_counter()]

    def on_epoch_end(self, loop: FitLoop, epoch: int, logs: dict[str, float]) -> None:
        self.times.append(time.perf_counter())


def spark_master() -> Any:
    from deepspark.spark import GradientSharing

    return GradientSharing(num_workers=2, batch_size_per_worker=32, encoding="dense", seed=SEED)


def accuracy(args: argparse.Namespace) -> None:
    from deepspark.spark import SparkNetwork, local_spark

    x_train, y_train, x_test, y_test = mnist_split(args.mnist)
    spark = local_spark("local[2]", app_name="deepspark-acceptance-torch")
    try:
        ship(spark, Path(tempfile.mkdtemp()))
        train_df, test_df = frame(spark, x_train, y_train, 2), frame(spark, x_test, y_test, 2)
        spark_net = SparkNetwork(spark, module_config(), spark_master())
        t0 = time.perf_counter()
        net = spark_net.fit(train_df, epochs=args.epochs, validation_data=test_df, verbose=2)
        wall = time.perf_counter() - t0
        acc = spark_net.evaluate(test_df).accuracy()
        assert spark_net.history is not None
        print(f"accuracy: ModuleConfig ResNet-style ({CHANNELS} channels, {BLOCKS} blocks, pool {POOL}, "
              f"{net.num_params():,} params), 2 workers GradientSharing dense, batch 32/worker, {args.epochs} epochs: "
              f"test accuracy {acc:.4f} (target >= 0.985: {'met' if acc >= 0.985 else 'NOT met'}); per epoch "
              f"{[round(a, 4) for a in spark_net.history['val_accuracy']]}; {wall:.0f} s; {load()}", flush=True)
        net.save(args.archive)
    finally:
        spark.stop()


def throughput_one(kind: str, epochs: int, mnist: Path) -> float:
    """One contender in this (fresh) process: samples/s of the last epoch on Spark."""
    from deepspark.spark import SparkNetwork, local_spark

    x_train, y_train, _, _ = mnist_split(mnist)
    spark = local_spark("local[2]", app_name=f"deepspark-throughput-{kind}")
    try:
        ship(spark, Path(tempfile.mkdtemp()))
        df = frame(spark, x_train, y_train, 2)
        conf = module_config() if kind == "module" else layers_config()
        clock = EpochClock()
        SparkNetwork(spark, conf, spark_master()).fit(df, epochs=epochs, callbacks=[clock], verbose=0)
        return len(x_train) / (clock.times[-1] - clock.times[-2])
    finally:
        spark.stop()


def throughput(args: argparse.Namespace) -> None:
    n_module, n_layers = Network(module_config()).num_params(), Network(layers_config()).num_params()
    print(f"throughput: same network, {n_module:,} params as ModuleConfig, {n_layers:,} as built-in layers",
          flush=True)
    results: dict[str, list[float]] = {"module": [], "layers": []}
    for _ in range(args.repeats):
        for kind in ("module", "layers"):
            out = subprocess.run(
                [sys.executable, __file__, "--part", "throughput-one", "--contender", kind, "--mnist", str(args.mnist),
                 "--throughput-epochs", str(args.throughput_epochs)],
                check=True, capture_output=True, text=True,
            )
            value = json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]
            results[kind].append(value)
            print(f"  {kind}: {value:,.0f} samples/s (epoch {args.throughput_epochs}); {load()}", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["module"] / med["layers"]
    print(f"throughput: median of {args.repeats}, fresh process each, alternating: ModuleConfig {med['module']:,.0f} "
          f"samples/s, built-in layers {med['layers']:,.0f} samples/s, ratio {ratio:.3f} (target within 5 %: "
          f"{'met' if abs(ratio - 1) <= 0.05 else 'NOT met'}); {load()}", flush=True)


def onnx_part(args: argparse.Namespace) -> None:
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    x_train, y_train, x_test, _ = mnist_split(args.mnist)
    nets = {}
    lenet = Network(lenet_config(seed=0))
    lenet.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    nets["LeNet (built-in layers)"] = lenet
    if Path(args.archive).exists():
        nets["ResNet-style ModuleConfig (trained above)"] = Network.load(args.archive)
    else:
        module = Network(module_config())
        module.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
        nets["ResNet-style ModuleConfig (1 epoch)"] = module
    folder = Path(tempfile.mkdtemp())
    for i, (name, net) in enumerate(nets.items()):
        result = net.export_onnx(folder / f"m{i}.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
        probs = np.concatenate([session.run(None, {"features": x_test[s : s + 256]})[0]
                                for s in range(0, len(x_test), 256)])
        diff = float(np.max(np.abs(probs - net.output(x_test))))
        rates = []
        for _ in range(5):
            t0 = time.perf_counter()
            for s in range(0, len(x_test), 256):
                session.run(None, {"features": x_test[s : s + 256]})
            rates.append(len(x_test) / (time.perf_counter() - t0))
        print(f"onnx: {name}: max abs difference to torch over {len(x_test)} test rows {diff:.2e} (target <= 1e-5: "
              f"{'met' if diff <= 1e-5 else 'NOT met'}); onnxruntime {statistics.median(rates):,.0f} rows/s "
              f"(batch 256, 1 thread, median of 5); {load()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mnist_arg(parser)
    parser.add_argument("--part", default="all", choices=["all", "accuracy", "throughput", "onnx", "throughput-one"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-epochs", type=int, default=2)
    parser.add_argument("--contender", choices=["module", "layers"], default="module")
    parser.add_argument("--archive", default=str(Path(tempfile.gettempdir()) / "deepspark-acceptance-resnet.zip"))
    args = parser.parse_args()
    if args.part == "throughput-one":
        print(json.dumps({"samples_per_s": throughput_one(args.contender, args.throughput_epochs, args.mnist)}))
        return
    if args.part in ("all", "accuracy"):
        accuracy(args)
    if args.part in ("all", "throughput"):
        throughput(args)
    if args.part in ("all", "onnx"):
        onnx_part(args)


if __name__ == "__main__":
    main()
