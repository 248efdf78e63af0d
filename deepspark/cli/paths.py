"""Checks on the files a command will write or read, made before any work starts."""

from __future__ import annotations

import difflib
import stat
from pathlib import Path

from deepspark.errors import DeepSparkError, StorageError


def check_new_output(path: str | Path, overwrite: bool, option: str = "--output") -> Path:
    """The output path, once it is safe to write: refuse to replace an existing file unless ``overwrite``.

    Runs before training, so a long run never ends by refusing (or silently replacing) its result.

    Raises:
        DeepSparkError: the path exists and ``overwrite`` is False, it is a folder, or its parent is a file.
    """
    out = Path(path)
    if out.is_dir():
        raise DeepSparkError(f"{option}: {out} is a folder; give a file name such as {out / 'model.zip'}")
    if out.exists() and not overwrite:
        raise DeepSparkError(f"{option}: {out} already exists; pass --overwrite to replace it or choose another path")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DeepSparkError(f"{option}: {parent} is a file, so {out} cannot be created")
            break
    return out


def regular_input(path: str | Path, what: str = "input") -> Path:
    """``path`` once it is known to be an existing regular file: a FIFO, device or folder is refused unopened
    (reading a FIFO with no writer would block forever).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        DeepSparkError: ``path`` is a folder, FIFO, socket or device.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
        kind = next((name for test, name in kinds if test(mode)), "a device")
        raise DeepSparkError(f"{what} {p} is {kind}, not a regular file; not opened: pass the path of a file")
    return p


def _similar_files(path: Path) -> list[str]:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return []
    try:
        names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix == path.suffix]
    except OSError:
        return []
    return [str(folder / n) for n in difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)]


def existing_storage(
    path: str | Path, create: bool = False, option: str = "--storage", create_flag: str | None = "--create"
) -> Path:
    """A stats database path that exists, or (with ``create``) whose folder exists for a new one.

    A mistyped path used to start the UI on a new empty database; now it is an error naming close
    matches, and ``create`` says that an empty one is really wanted.

    Raises:
        StorageError: the file is missing (without ``create``), is a folder, or its folder is missing.
    """
    p = Path(path)
    if p.is_dir():
        raise StorageError(f"{option}: {p} is a folder; give the SQLite stats file, e.g. {p / 'runs.db'}")
    if p.is_file():
        return p
    if not create:
        close = _similar_files(p)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        how = (
            f"pass {create_flag} to start an empty one"
            if create_flag
            else "train with a StatsListener(SQLiteStatsStorage(...)) to write one"
        )
        where = f"{option}: " if option else ""
        raise StorageError(f"{where}stats database {p} does not exist{hint} ({how})")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise StorageError(f"{option}: folder {folder} does not exist; create it first or choose another path")
    return p


__all__ = ["check_new_output", "existing_storage", "regular_input"]
