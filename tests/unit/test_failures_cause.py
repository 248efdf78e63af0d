"""The failure translator names a lost executor (with what its exit code means) as the cause of a failed job."""

from __future__ import annotations

from deepspark._failures import executor_lost, root_cause, translate
from deepspark.errors import DistributedTrainingError

SPARK_TEXT = (
    "An error occurred while calling o24585.collectToPython.\n"
    ": org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a failed barrier "
    "ResultStage. Most recent failure reason: Stage failed because barrier task ResultTask(30, 1) finished "
    "unsuccessfully.\n"
    "ExecutorLostFailure (executor 1 exited caused by one of the running tasks) Reason: Command exited with code 137\n"
    "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:3046)\n"
)


def test_root_cause_executor_lost_names_executor_and_signal() -> None:
    cause = root_cause(RuntimeError(SPARK_TEXT))
    assert cause.startswith("executor 1 was lost (caused by one of the running tasks: Command exited with code 137")
    assert "SIGKILL" in cause and "spark.executor.memoryOverhead" in cause


def test_executor_lost_unrelated_to_tasks_without_exit_code() -> None:
    text = "ExecutorLostFailure (executor 7 exited unrelated to the running tasks) Reason: Worker shutting down"
    assert executor_lost(text) == "executor 7 was lost (unrelated to the running tasks: Worker shutting down)"
    assert executor_lost("RuntimeError: Connection closed by peer") is None


def test_root_cause_without_lost_executor_keeps_the_last_exception_line() -> None:
    text = "Job aborted\nTraceback (most recent call last):\nRuntimeError: [gloo] Connection closed by peer"
    assert root_cause(RuntimeError(text)) == "RuntimeError: [gloo] Connection closed by peer"


def test_translate_lost_executor_distributed_training_error_names_it_and_the_setting() -> None:
    error = translate(RuntimeError(SPARK_TEXT), "gradient sharing, epoch 3")
    assert isinstance(error, DistributedTrainingError)
    assert "executor 1 was lost" in str(error) and "spark.stage.maxConsecutiveAttempts" in str(error)
