"""Downloading into the cache against a local HTTP server: checksums, resume, atomic placement, offline errors."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.datasets import RemoteFile, fetch
from deepspark.errors import DownloadError


def _remote(server: Any, name: str, data: bytes, sha: str | None = "auto") -> RemoteFile:
    server.files[name] = data
    digest = hashlib.sha256(data).hexdigest() if sha == "auto" else sha
    return RemoteFile("fixture", name, f"{server.url}/{name}", digest, len(data))


def _payload(seed: int, n: int = 300_000) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_fetch_downloads_once_verifies_and_reuses_cache(file_server: Any, tmp_path: Path, seed: int) -> None:
    data = _payload(seed)
    remote = _remote(file_server, "blob.bin", data)
    path = fetch(remote, cache=tmp_path)
    assert path == tmp_path / "fixture" / "blob.bin"
    assert path.read_bytes() == data
    assert not (tmp_path / "fixture" / "blob.bin.part").exists()
    assert fetch(remote, cache=tmp_path) == path
    assert file_server.requests == [("blob.bin", None)]  # the second call did not touch the network


def test_fetch_checksum_mismatch_download_error_leaves_nothing(file_server: Any, tmp_path: Path, seed: int) -> None:
    remote = _remote(file_server, "blob.bin", _payload(seed), sha="0" * 64)
    with pytest.raises(DownloadError) as info:
        fetch(remote, cache=tmp_path)
    message = str(info.value)
    assert "SHA-256 mismatch for blob.bin: expected " + "0" * 64 + " (the published hash)" in message
    assert hashlib.sha256(file_server.files["blob.bin"]).hexdigest() in message
    assert str(tmp_path / "fixture" / "blob.bin") in message  # where a manual copy goes
    assert sorted(p.name for p in (tmp_path / "fixture").iterdir() if not p.name.startswith(".")) == []


def test_fetch_interrupted_download_resumes_with_range(file_server: Any, tmp_path: Path, seed: int) -> None:
    data = _payload(seed)
    remote = _remote(file_server, "blob.bin", data)
    file_server.cut_after["blob.bin"] = 120_000
    with pytest.raises(DownloadError, match="resumes next time"):
        fetch(remote, cache=tmp_path)
    part = tmp_path / "fixture" / "blob.bin.part"
    assert part.stat().st_size == 120_000
    assert not (tmp_path / "fixture" / "blob.bin").exists()  # nothing half-written under the real name
    path = fetch(remote, cache=tmp_path)
    assert path.read_bytes() == data
    assert file_server.requests[-1] == ("blob.bin", "bytes=120000-")
    assert not part.exists()


def test_fetch_server_ignoring_range_restarts_cleanly(file_server: Any, tmp_path: Path, seed: int) -> None:
    data = _payload(seed)
    remote = _remote(file_server, "blob.bin", data)
    file_server.cut_after["blob.bin"] = 50_000
    with pytest.raises(DownloadError):
        fetch(remote, cache=tmp_path)
    file_server.ignore_range = True
    assert fetch(remote, cache=tmp_path).read_bytes() == data


def test_fetch_offline_error_names_url_and_manual_path_then_manual_copy_used(tmp_path: Path, seed: int) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = _payload(seed, 1000)
    remote = RemoteFile("fixture", "blob.bin", f"http://127.0.0.1:{port}/blob.bin", hashlib.sha256(data).hexdigest())
    target = tmp_path / "fixture" / "blob.bin"
    with pytest.raises(DownloadError) as info:
        fetch(remote, cache=tmp_path, timeout=5)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/blob.bin" in message and f"put it at {target}" in message
    assert remote.sha256 in message
    target.write_bytes(data)  # what a user does on an offline machine
    assert fetch(remote, cache=tmp_path) == target
    target.write_bytes(data[:-1] + b"?")
    (tmp_path / "fixture" / "blob.bin.sha256").unlink()
    with pytest.raises(DownloadError, match="the file in the cache: SHA-256 mismatch"):
        fetch(remote, cache=tmp_path)


def test_fetch_mirror_env_and_cache_env(file_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"mirrored bytes"
    file_server.files["m.bin"] = data
    remote = RemoteFile("fixture", "m.bin", "https://example.invalid/m.bin", hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("DEEPSPARK_DATASETS_MIRROR", file_server.url + "/")
    monkeypatch.setenv("DEEPSPARK_DATA_DIR", str(tmp_path / "env-cache"))
    assert fetch(remote).read_bytes() == data
    assert (tmp_path / "env-cache" / "fixture" / "m.bin").is_file()


def test_fetch_http_error_and_non_http_scheme(file_server: Any, tmp_path: Path) -> None:
    missing = RemoteFile("fixture", "nope.bin", f"{file_server.url}/nope.bin", "0" * 64)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(missing, cache=tmp_path)
    local = RemoteFile("fixture", "x.bin", "file:///etc/passwd", "0" * 64)
    with pytest.raises(DownloadError, match="only http and https"):
        fetch(local, cache=tmp_path)


def test_fetch_oversized_response_refused(file_server: Any, tmp_path: Path) -> None:
    file_server.files["big.bin"] = b"x" * 5000
    remote = RemoteFile("fixture", "big.bin", f"{file_server.url}/big.bin", "0" * 64, size=100)
    with pytest.raises(DownloadError, match="more than the expected 100 bytes") as info:
        fetch(remote, cache=tmp_path)
    assert "resumes" not in str(info.value)
    assert not (tmp_path / "fixture" / "big.bin.part").exists()
