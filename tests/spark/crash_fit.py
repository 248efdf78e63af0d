"""A driver process to crash: ``python crash_fit.py DATA.npz CONFIG.json MASTER.json CHECKPOINTS EPOCHS``.

Starts its own local[2] SparkSession and fits with a checkpoint after every epoch; the test SIGKILLs it
mid-fit (tests/spark/test_driver_crash.py). ``frame`` builds the DataFrame the same way in the test's process.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def frame(spark: SparkSession, x: np.ndarray, y: np.ndarray) -> DataFrame:
    """The training DataFrame (same rows, same partitions in every process)."""
    import pandas as pd

    return spark.createDataFrame(pd.DataFrame({"features": list(x.astype(np.float64)), "label": y}))


def main(argv: list[str]) -> int:
    from deepspark.config.root import config_from_json
    from deepspark.spark import SparkNetwork, TrainingMaster, local_spark

    data, config, master, checkpoints, epochs = argv
    arrays = np.load(data)
    spark = local_spark("local[2]", app_name="deepspark-crash", conf={"spark.sql.shuffle.partitions": "2"}, ui=False)
    with open(config) as f:
        conf = config_from_json(f.read())
    with open(master) as f:
        spec = TrainingMaster.from_json(f.read())
    net = SparkNetwork(spark, conf, spec)
    net.fit(frame(spark, arrays["x"], arrays["y"]), epochs=int(epochs), checkpoint_dir=checkpoints)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
