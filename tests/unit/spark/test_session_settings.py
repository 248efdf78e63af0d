"""What local_spark and cluster_spark configure, checked without a JVM: loopback only for local masters,
the user's settings respected on a cluster, the quiet log unless the user has one, early typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspark.errors import ConfigError
from deepspark.spark import cluster_spark
from deepspark.spark.session import (
    QUIET_LOG4J2,
    cluster_spark_conf,
    default_spark_conf,
    executor_python_for,
    is_local_master,
    quiet_log_conf,
)

_LOOPBACK_KEYS = ("spark.driver.host", "spark.driver.bindAddress", "spark.ui.enabled")


@pytest.mark.parametrize(
    ("master", "local"),
    [
        ("local", True),
        ("local[*]", True),
        ("local[2,3]", True),
        ("local-cluster[2,1,1024]", True),
        ("spark://10.0.0.5:7077", False),
        ("yarn", False),
        ("k8s://https://kube:6443", False),
    ],
)
def test_is_local_master_tells_cluster_urls_apart(master: str, local: bool) -> None:
    assert is_local_master(master) is local


def test_cluster_spark_conf_binds_nothing_and_ships_archives() -> None:
    conf = cluster_spark_conf(["/envs/env.tar.gz#environment", "hdfs:///data/extra.zip#extra"])
    assert not any(key in conf for key in _LOOPBACK_KEYS)
    assert "spark.sql.shuffle.partitions" not in conf
    assert conf["spark.archives"] == "/envs/env.tar.gz#environment,hdfs:///data/extra.zip#extra"
    assert conf["spark.ui.showConsoleProgress"] == "false"
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    # local_spark's defaults do pin the driver to loopback
    local = default_spark_conf("local[2]")
    assert local["spark.driver.host"] == "127.0.0.1" and local["spark.driver.bindAddress"] == "127.0.0.1"


def test_quiet_log_conf_loads_the_quiet_config_and_keeps_the_users_jvm_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    options = quiet_log_conf({"spark.driver.extraJavaOptions": "-Xss4m"})["spark.driver.extraJavaOptions"]
    assert options.startswith("-Xss4m -Dlog4j2.configurationFile=file:")
    written = Path(options.split("file:", 1)[1])
    assert written.read_text() == QUIET_LOG4J2
    assert "rootLogger.level = warn" in QUIET_LOG4J2


def test_quiet_log_conf_leaves_a_users_own_log_configuration_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    assert quiet_log_conf({"spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=mine.xml"}) == {}
    (tmp_path / "log4j2.properties").write_text("rootLogger.level = info\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert quiet_log_conf({}) == {}


def test_executor_python_prefers_explicit_then_env_then_the_archives_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    archives = ["env.tar.gz#environment"]
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert executor_python_for(archives) == "./environment/bin/python"
    assert executor_python_for(["env.tar.gz"]) is None  # no alias: Spark's own default
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/py/bin/python")
    assert executor_python_for(archives) == "/opt/py/bin/python"  # the user's setting wins over a guess
    assert executor_python_for(archives, "./other/bin/python") == "./other/bin/python"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"master_url": ""}, "master_url: expected a Spark master URL"),
        ({"master_url": "spark://h:7077", "archives": ["/no/such/env.tar.gz#environment"]}, r"archives\[0\]: no such"),
        ({"master_url": "spark://h:7077", "archives": "env.tar.gz#environment"}, "expected a list"),
        ({"master_url": "spark://h:7077", "log_level": "LOUD"}, "log_level: expected one of"),
    ],
)
def test_cluster_spark_bad_arguments_raise_config_error_before_starting_anything(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cluster_spark(**kwargs)  # type: ignore[arg-type]
