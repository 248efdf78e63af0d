"""Downloading a data set file once into a cache: checksum, atomic rename, resumable partial downloads, a lock.

A file is fetched to ``<cache>/<dataset>/<name>.part`` and renamed into place only after its SHA-256 matched,
so a visible file is always a complete, verified one. An interrupted download resumes from the partial file
with an HTTP Range request (a server that ignores Range sends the whole file again, which is handled). A
lock file keeps two processes from writing the same partial file. When the network is unreachable the
error names the URL and the exact path where a manually downloaded copy is picked up.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deepspark.errors import DownloadError

CACHE_ENV = "DEEPSPARK_DATA_DIR"
MIRROR_ENV = "DEEPSPARK_DATASETS_MIRROR"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file of a published data set: where it lives, its size and SHA-256 (from the publisher's listing).

    ``sha256=None`` marks a file whose publisher gives no checksum: its hash is recorded on first download
    and checked on every later use (trust on first use), and the download says so.
    """

    dataset: str
    name: str
    url: str
    sha256: str | None
    size: int | None = None


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where data sets are kept: ``override``, else ``$DEEPSPARK_DATA_DIR``, else ``~/.cache/deepspark/datasets``."""
    if override is not None:
        return Path(override)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepspark" / "datasets"


def _url(remote: RemoteFile, mirror: str | None) -> str:
    base = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    url = f"{base.rstrip('/')}/{remote.name}" if base else remote.url
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http and https downloads are supported, got {scheme!r}")
    return url


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _recorded(target: Path) -> tuple[str, int] | None:
    """The (SHA-256, size) recorded when ``target`` was last verified, if any."""
    stamp = _stamp(target)
    if not stamp.is_file():
        return None
    parts = stamp.read_text().split()
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _expected(remote: RemoteFile, target: Path) -> str | None:
    """The hash a file must have: the published one, else the one recorded on first download."""
    if remote.sha256 is not None:
        return remote.sha256
    recorded = _recorded(target)
    return None if recorded is None else recorded[0]


def _verified(target: Path, remote: RemoteFile) -> bool:
    """Whether ``target`` is a complete file already checked against its checksum (size and stamp unchanged)."""
    recorded = _recorded(target)
    if not target.is_file() or recorded is None or recorded[1] != target.stat().st_size:
        return False
    return remote.sha256 is None or recorded[0] == remote.sha256


def fetch(
    remote: RemoteFile,
    *,
    cache: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """The local path of ``remote``, downloading it first when the cache lacks a verified copy.

    Args:
        remote: the file to fetch.
        cache: the cache folder (see ``cache_dir``).
        mirror: a base URL serving the same file names (or ``$DEEPSPARK_DATASETS_MIRROR``).
        timeout: seconds to wait for the server on each read.

    Raises:
        DownloadError: unreachable server, HTTP error or checksum mismatch; the message names the URL and
            where a manually downloaded copy is used.
    """
    folder = cache_dir(cache) / remote.dataset
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if _verified(target, remote):
        return target
    with _locked(folder / f".{remote.name}.lock"):
        if _verified(target, remote):  # another process finished it while we waited
            return target
        expected = _expected(remote, target)
        if target.is_file():  # a manually placed (or changed) copy: check it like a download
            _accept(target, target, remote, expected, "the file in the cache")
            return target
        url = _url(remote, mirror)
        part = folder / f"{remote.name}.part"
        _download(url, part, remote, target, timeout)
        _accept(part, target, remote, expected, url)
    return target


def _manual(target: Path, remote: RemoteFile) -> str:
    checksum = f" (SHA-256 {remote.sha256})" if remote.sha256 else ""
    return f"download {remote.url} yourself and put it at {target}{checksum}, or set {MIRROR_ENV} to a mirror"


def _download(url: str, part: Path, remote: RemoteFile, target: Path, timeout: float) -> None:
    """Fetch ``url`` into ``part``, resuming from its current size when the server honours Range."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "deepspark-datasets"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have > 0 and response.status == 206
            limit = (remote.size or 0) + 1 if remote.size else None
            announced = response.headers.get("Content-Length")
            received = 0
            with open(part, "ab" if resumed else "wb") as out:
                written = have if resumed else 0
                for block in iter(lambda: response.read(_CHUNK), b""):
                    written += len(block)
                    received += len(block)
                    if limit is not None and written > limit:
                        raise DownloadError(f"{url}: the server sends more than the expected {remote.size} bytes")
                    out.write(block)
            if announced is not None and announced.isdigit() and received < int(announced):
                raise ConnectionError(f"the connection closed after {received} of {announced} bytes")
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete: let the checksum decide
            return
        raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}; {_manual(target, remote)}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(
            f"cannot download {url} ({reason}); the partial download is kept and resumes next time. If this machine "
            f"is offline, {_manual(target, remote)}"
        ) from None


def _accept(source: Path, target: Path, remote: RemoteFile, expected: str | None, origin: str) -> None:
    """Check ``source``'s SHA-256, then move it to ``target`` atomically and record the verified hash."""
    actual = _sha256(source)
    if expected is not None and actual != expected:
        source.unlink()
        _stamp(target).unlink(missing_ok=True)
        what = "the published" if remote.sha256 else "the first download's"
        raise DownloadError(
            f"{origin}: SHA-256 mismatch for {remote.name}: expected {expected} ({what} hash), got {actual}; the "
            f"damaged file was removed. Try again, or {_manual(target, remote)}"
        )
    if source != target:
        os.replace(source, target)
    tmp = _stamp(target).with_suffix(".tmp")
    tmp.write_text(f"{actual} {target.stat().st_size}\n")
    os.replace(tmp, _stamp(target))
