"""Run as its own process by ``test_gpu_scheduling``: a ``local-cluster`` whose one executor owns two fake GPUs.

A discovery script hands out the addresses ``0`` and ``1`` (no GPU needed); each task asks deepspark which device
it would compute on. Prints one JSON line: the devices plain and barrier tasks picked, and the error a real
``SparkNetwork.predict`` ends with (on a machine without CUDA its tasks refuse the assigned GPU before any work).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any


def main(discovery: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from pyspark import TaskContext
    from pyspark.sql import SparkSession

    from deepspark import SparkNetwork
    from deepspark.config import Dense, InputType, NetworkConfig, Output
    from deepspark.spark._placement import current_task_device, driver_placement

    spark = (
        SparkSession.builder.master("local-cluster[1,2,1024]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.task.maxFailures", "1")
        .config("spark.worker.resource.gpu.amount", "2")
        .config("spark.worker.resource.gpu.discoveryScript", discovery)
        .config("spark.executor.resource.gpu.amount", "2")
        .config("spark.task.resource.gpu.amount", "1")
        .getOrCreate()
    )
    try:
        placement = driver_placement(spark.sparkContext)

        def pick(_: Iterator[int]) -> Iterator[tuple[int, str, list[str]]]:
            ctx = TaskContext.get()
            assert ctx is not None
            yield ctx.partitionId(), current_task_device(placement), list(ctx.resources()["gpu"].addresses)

        rdd = spark.sparkContext.parallelize(range(2), 2)
        plain = sorted(rdd.mapPartitions(pick).collect())
        barrier = sorted(rdd.barrier().mapPartitions(pick).collect())
        conf = NetworkConfig(input_type=InputType.feed_forward(3), layers=(Dense(n_out=4), Output(n_out=2)))
        x = np.random.default_rng(0).standard_normal((8, 3))
        df = spark.createDataFrame(pd.DataFrame({"features": list(x), "label": [0, 1] * 4})).repartition(2)
        error = ""
        try:
            SparkNetwork(spark, conf).predict(df, "features", "prediction").collect()
        except Exception as e:  # the message is the result
            error = str(e)
        return {"placement": [placement.device, placement.task_amount], "plain": plain, "barrier": barrier,
                "predict_error": error}
    finally:
        spark.stop()


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1])), flush=True)
