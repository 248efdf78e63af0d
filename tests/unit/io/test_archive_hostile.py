"""Hostile, corrupted and malformed archives: every one must raise ModelFormatError and nothing else."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import safetensors.numpy

from deepspark.errors import ModelFormatError
from deepspark.io import read_archive, read_archive_metadata
from deepspark.nn import Network

Members = list[tuple[str, bytes]]
PARAMS_VALUES = np.linspace(-1.0, 1.0, 64, dtype=np.float32)


def _st(**tensors: np.ndarray[Any, Any]) -> bytes:
    return safetensors.numpy.save(tensors)


def _raw_st(header: object, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def _meta(**overrides: Any) -> bytes:
    meta = {"format_version": 1, "deepspark_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00", "epoch": 1}
    meta.update(overrides)
    return json.dumps({k: v for k, v in meta.items() if v is not ...}).encode()


def _valid(**replace: bytes | None) -> Members:
    """The members of a sound archive; ``replace`` swaps (bytes) or drops (None) one by its stem."""
    members = {
        "config.json": b'{"layers": []}',
        "params.safetensors": _st(params=PARAMS_VALUES),
        "updater.safetensors": _st(updater_state=np.zeros(128, np.float32)),
        "normalizer.json": b"{}",
        "metadata.json": _meta(),
    }
    for stem, data in replace.items():
        name = next(n for n in members if n.split(".")[0] == stem)
        if data is None:
            del members[name]
        else:
            members[name] = data
    return list(members.items())


def _zip(members: Members, method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on the duplicate names we plant on purpose
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members:
                zf.writestr(name, data, compress_type=method)
    return buf.getvalue()


def _patch_central(blob: bytes, name: str, field_offset: int, fmt: str, value: int) -> bytes:
    """Rewrite one field of ``name``'s central directory record (what zipfile trusts for sizes and flags)."""
    out = bytearray(blob)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        if out[pos + 46 : pos + 46 + name_len] == name.encode():
            struct.pack_into(fmt, out, pos + field_offset, value)
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 4)
    raise LookupError(name)


def _flip_last_params_byte() -> bytes:
    blob = bytearray(_zip(_valid()))
    end = blob.find(PARAMS_VALUES.tobytes()) + PARAMS_VALUES.nbytes - 1
    blob[end] ^= 0xFF
    return bytes(blob)


def _declared_size(name: str, size: int, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    return _patch_central(_zip(_valid(), method), name, 24, "<I", size)


def _encrypted(name: str) -> bytes:
    return _patch_central(_zip(_valid()), name, 8, "<H", 0x1)


def _mixed_methods() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _valid():
            zf.writestr(name, data, compress_type=zipfile.ZIP_BZIP2 if name == "config.json" else zipfile.ZIP_STORED)
    return buf.getvalue()


HOSTILE: list[Any] = [
    # not a zip, or truncated
    pytest.param(lambda: b"", "not a zip file", id="empty_file"),
    pytest.param(lambda: b"just some text, not a zip", "not a zip file", id="text_file"),
    pytest.param(lambda: _zip(_valid())[: len(_zip(_valid())) // 2], "not a zip file", id="truncated_half"),
    pytest.param(lambda: _zip(_valid())[:-10], "not a zip file", id="truncated_tail"),
    # corrupted bytes and lying sizes
    pytest.param(_flip_last_params_byte, "'params.safetensors' is corrupted", id="crc_mismatch"),
    pytest.param(lambda: _declared_size("config.json", 5), "'config.json' is corrupted", id="declared_size_smaller"),
    pytest.param(
        lambda: _declared_size("metadata.json", 10**6, zipfile.ZIP_STORED), "'metadata.json'", id="declared_size_larger"
    ),
    # members missing, extra, hostile names, duplicated, directories
    pytest.param(lambda: _zip(_valid(config=None)), "missing required member 'config.json'", id="missing_config"),
    pytest.param(lambda: _zip(_valid(params=None)), "missing required member 'params", id="missing_params"),
    pytest.param(lambda: _zip(_valid(metadata=None)), "missing required member 'metadata.json'", id="missing_meta"),
    pytest.param(lambda: _zip([]), "present: []", id="empty_zip"),
    pytest.param(lambda: _zip([*_valid(), ("data.pkl", b"x")]), "unexpected member 'data.pkl'", id="extra_pkl"),
    pytest.param(lambda: _zip([*_valid(), ("model.pt", b"x")]), "unexpected member 'model.pt'", id="extra_pt"),
    pytest.param(lambda: _zip([*_valid(), ("Config.json", b"{}")]), "unexpected member 'Config.json'", id="case"),
    pytest.param(lambda: _zip([*_valid(), ("../evil", b"x")]), "'../evil' is an absolute", id="traversal"),
    pytest.param(lambda: _zip([*_valid(), ("/etc/x", b"x")]), "'/etc/x' is an absolute", id="absolute"),
    pytest.param(lambda: _zip([*_valid(), ("a/../../b", b"x")]), "'a/../../b' is an absolute", id="nested_traversal"),
    pytest.param(lambda: _zip([*_valid(), ("c:\\x", b"x")]), "is an absolute", id="drive_letter"),
    pytest.param(lambda: _zip([*_valid(), ("models/", b"")]), "directory entry 'models/'", id="directory"),
    pytest.param(
        lambda: _zip([*_valid(), ("config.json", b'{"evil": 1}')]), "duplicate member names ['config.json']", id="dup"
    ),
    # zip bombs, encryption, exotic compression
    pytest.param(lambda: _declared_size("params.safetensors", 3 * 2**30), "likely zip bomb", id="ratio_bomb"),
    pytest.param(
        lambda: _declared_size("config.json", 3 * 2**30), "more than the 16777216 a JSON member", id="json_over_cap"
    ),
    pytest.param(lambda: _declared_size("normalizer.json", 2**32 - 2), "more than max_bytes", id="declared_huge"),
    pytest.param(lambda: _encrypted("params.safetensors"), "'params.safetensors' is encrypted", id="encrypted"),
    pytest.param(_mixed_methods, "compression method 12, not stored or deflated", id="bzip2"),
    # metadata and format version
    pytest.param(lambda: _zip(_valid(metadata=_meta(format_version=7))), "archive format 7 is newer", id="v7"),
    pytest.param(lambda: _zip(_valid(metadata=_meta(format_version=...))), "has no 'format_version'", id="no_version"),
    pytest.param(lambda: _zip(_valid(metadata=_meta(format_version="1"))), "must be an int, got string", id="v_str"),
    pytest.param(lambda: _zip(_valid(metadata=_meta(format_version=True))), "must be an int, got boolean", id="v_bool"),
    pytest.param(lambda: _zip(_valid(metadata=_meta(format_version=0))), "'format_version' 0 is invalid", id="v0"),
    pytest.param(lambda: _zip(_valid(metadata=_meta(created=5))), "'created' must be a string", id="created_int"),
    # JSON members
    pytest.param(lambda: _zip(_valid(config=b"{oops")), "config.json is not valid JSON", id="config_invalid"),
    pytest.param(
        lambda: _zip(_valid(config=b"[1]")), "config.json must hold a JSON object, got a JSON array", id="arr"
    ),
    pytest.param(lambda: _zip(_valid(config=b'{"a": "\xff"}')), "config.json is not valid UTF-8", id="config_utf8"),
    pytest.param(lambda: _zip(_valid(config=b'{"a": 1, "a": 2}')), "duplicate key 'a'", id="config_dup_key"),
    pytest.param(lambda: _zip(_valid(config=b"[" * 100_000)), "config.json is not valid JSON", id="config_deep"),
    pytest.param(lambda: _zip(_valid(metadata=b"nope")), "metadata.json is not valid JSON", id="meta_invalid"),
    pytest.param(lambda: _zip(_valid(metadata=b"\xfe\xff")), "metadata.json is not valid UTF-8", id="meta_utf8"),
    pytest.param(lambda: _zip(_valid(normalizer=b'"x"')), "normalizer.json must hold a JSON object", id="norm_str"),
    # safetensors members
    pytest.param(lambda: _zip(_valid(params=b"abc")), "too short for a safetensors file", id="st_too_short"),
    pytest.param(
        lambda: _zip(_valid(params=struct.pack("<Q", 2**63) + b"{}")), "header length field says", id="st_huge_header"
    ),
    pytest.param(
        lambda: _zip(_valid(params=struct.pack("<Q", 4) + b"{{{{")), "invalid safetensors header", id="st_bad_header"
    ),
    pytest.param(
        lambda: _zip(_valid(params=struct.pack("<Q", 2) + b"\xff\xfe")), "invalid safetensors header", id="st_utf8"
    ),
    pytest.param(
        lambda: _zip(_valid(params=_st(weights=PARAMS_VALUES))),
        "one tensor named 'params'; it holds ['weights']",
        id="name",
    ),
    pytest.param(
        lambda: _zip(_valid(params=_st(params=PARAMS_VALUES, b=PARAMS_VALUES))), "holds ['b', 'params']", id="two"
    ),
    pytest.param(lambda: _zip(_valid(params=_raw_st({}))), "it holds []", id="st_no_tensor"),
    pytest.param(lambda: _zip(_valid(params=_st(params=np.arange(4, dtype=np.int32)))), "dtype 'I32'", id="int32"),
    pytest.param(lambda: _zip(_valid(params=_st(params=np.ones(4, bool)))), "dtype 'BOOL'", id="bool"),
    pytest.param(lambda: _zip(_valid(params=_st(params=np.ones(4, np.float16)))), "dtype 'F16'", id="f16"),
    pytest.param(lambda: _zip(_valid(params=_st(params=np.ones((2, 2), np.float32)))), "shape [2, 2]", id="2d"),
    pytest.param(lambda: _zip(_valid(params=_st(params=np.array(1.0, np.float32)))), "shape []", id="scalar"),
    pytest.param(
        lambda: _zip(
            _valid(params=_raw_st({"params": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}}, b"x" * 16))
        ),
        "invalid safetensors data in params.safetensors",
        id="st_bad_offsets",
    ),
    pytest.param(
        lambda: _zip(_valid(params=_raw_st({"params": {"dtype": "F32", "shape": [4]}}, b"x" * 16))),
        "invalid safetensors data",
        id="st_no_offsets",
    ),
    pytest.param(
        lambda: _zip(_valid(updater=_st(updater_state=np.zeros(2, np.float64)))),
        "updater.safetensors has dtype float64 but params.safetensors has float32",
        id="updater_dtype_mix",
    ),
    pytest.param(lambda: _zip(_valid(updater=_st(params=np.zeros(2, np.float32)))), "named 'updater_state'", id="upd"),
]


@pytest.mark.parametrize(("make", "phrase"), HOSTILE)
def test_read_archive_hostile_file_raises_model_format_error(
    tmp_path: Path, make: Callable[[], bytes], phrase: str
) -> None:
    target = tmp_path / "model.zip"
    target.write_bytes(make())
    with pytest.raises(ModelFormatError) as info:
        read_archive(target)
    message = str(info.value)
    assert phrase in message
    assert str(target) in message


def test_read_archive_valid_fixture_members_load() -> None:
    """The hostile rows above each break one thing of this sound archive; prove it is sound."""
    buf = io.BytesIO(_zip(_valid()))
    with zipfile.ZipFile(buf) as zf:
        assert zf.testzip() is None


def test_read_archive_valid_fixture_reads(tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(_zip(_valid(), zipfile.ZIP_DEFLATED))
    np.testing.assert_array_equal(read_archive(tmp_path / "m.zip").params, PARAMS_VALUES)


@pytest.mark.parametrize(
    ("make", "phrase"), [p for p in HOSTILE if p.id in {"v7", "missing_params", "traversal", "ratio_bomb", "dup"}]
)
def test_read_archive_metadata_hostile_file_raises_model_format_error(
    tmp_path: Path, make: Callable[[], bytes], phrase: str
) -> None:
    (tmp_path / "m.zip").write_bytes(make())
    with pytest.raises(ModelFormatError) as info:
        read_archive_metadata(tmp_path / "m.zip")
    assert phrase in str(info.value)


def test_read_archive_metadata_huge_header_length_raises(tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(_zip(_valid(params=struct.pack("<Q", 2**63) + b"{}")))
    with pytest.raises(ModelFormatError, match="header length field says"):
        read_archive_metadata(tmp_path / "m.zip")


class _TouchOnUnpickle:
    """Unpickling this creates a marker file: the payload an attacker would plant, made harmless."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("where", ["extra_member", "params_bytes"])
def test_read_archive_pickle_payload_is_never_unpickled(tmp_path: Path, where: str) -> None:
    # The payload is live: unpickling it (here, on purpose) creates its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(probe)))
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_TouchOnUnpickle(marker))
    if where == "extra_member":
        members = [*_valid(), ("params.pkl", payload)]
        phrase = "unexpected member 'params.pkl'"
    else:
        members = _valid(params=payload)
        phrase = "params.safetensors: safetensors header length field"
    (tmp_path / "m.zip").write_bytes(_zip(members))
    for reader in (read_archive, read_archive_metadata):
        with pytest.raises(ModelFormatError) as info:
            reader(tmp_path / "m.zip")
        assert phrase in str(info.value)
    assert not marker.exists()


def test_read_archive_zip_bomb_refused_before_inflating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = b"\0" * (64 * 2**20)
    (tmp_path / "bomb.zip").write_bytes(_zip(_valid(config=bomb), zipfile.ZIP_DEFLATED))
    assert (tmp_path / "bomb.zip").stat().st_size < 2**20  # 64 MiB squeezed into well under max_bytes
    opened: list[object] = []
    real_open = zipfile.ZipFile.open

    def spy_open(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(name)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy_open)
    with pytest.raises(ModelFormatError, match=r"more than max_bytes=1048576: pass a larger max_bytes"):
        read_archive(tmp_path / "bomb.zip", max_bytes=2**20)
    assert opened == []


def test_read_archive_member_yielding_more_than_declared_reads_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.zip").write_bytes(_zip(_valid()))
    requested: list[int] = []

    class Endless(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            requested.append(size)
            return b" " * (size if size >= 0 else 10**6)

    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: Endless())
    with pytest.raises(ModelFormatError, match=r"'metadata\.json' holds more bytes but declares"):
        read_archive(tmp_path / "m.zip")
    declared = len(_meta())
    assert requested == [declared + 1]


def test_read_archive_metadata_header_over_cap_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.zip").write_bytes(_zip(_valid()))
    monkeypatch.setattr("deepspark.io.archive._MAX_HEADER", 10)
    with pytest.raises(ModelFormatError, match=r"header cap 10\)"):
        read_archive_metadata(tmp_path / "m.zip")


def test_read_archive_memory_url_not_a_zip_raises_model_format_error() -> None:
    url = "memory://deepspark-tests/hostile/not-a-zip.zip"
    fs = fsspec.filesystem("memory")
    fs.pipe(url, b"PK\x03\x04 not really")
    try:
        with pytest.raises(ModelFormatError, match="not a zip file"):
            read_archive(url)
    finally:
        fs.rm(url)


def test_read_archive_memory_url_missing_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        read_archive("memory://deepspark-tests/absent/model.zip")


def test_read_archive_params_size_disagreeing_with_header_refused(tmp_path: Path) -> None:
    padded = _st(params=PARAMS_VALUES) + b"\0" * 4096  # header says 64 float32 values, the member holds more
    (tmp_path / "m.zip").write_bytes(_zip(_valid(params=padded)))
    with pytest.raises(ModelFormatError, match=r"params\.safetensors declares \d+ bytes uncompressed, but its "
                       r"safetensors header implies \d+ \(64 float32 values\)"):
        read_archive(tmp_path / "m.zip")


def test_network_load_member_declaring_more_than_config_refused_before_inflating(tmp_path: Path) -> None:
    import tracemalloc

    from deepspark.config import InputType, NetworkConfig, Output
    from deepspark.nn import Network

    Network(NetworkConfig(input_type=InputType.feed_forward(4), layers=(Output(n_out=3),))).save(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        members = [(n, zf.read(n)) for n in zf.namelist()]
    block = np.zeros(2**20, np.uint8)
    block[::64] = np.random.default_rng(0).integers(1, 256, size=block[::64].size)
    declared = 48 * 2**20  # 48 MiB of padding after 15 parameters; deflates ~30x, under the zip-bomb ratio
    members = [(n, d + block.tobytes() * 48 if n == "params.safetensors" else d) for n, d in members]
    (tmp_path / "b.zip").write_bytes(_zip(members, zipfile.ZIP_DEFLATED))
    assert (tmp_path / "b.zip").stat().st_size < declared // 8
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=r"params\.safetensors declares \d+ bytes uncompressed, but the "
                           r"config builds at most 15 values .*not inflated"):
            Network.load(tmp_path / "b.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak} bytes while refusing a member that declares {declared}"


@pytest.mark.parametrize("reader", [read_archive, read_archive_metadata, Network.load])
def test_read_archive_fifo_refused_without_opening(tmp_path: Path, reader: Callable[[Path], object]) -> None:
    fifo = tmp_path / "model.zip"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes; the reader must not open it
    with pytest.raises(ModelFormatError, match=r"is a FIFO \(named pipe\), not a regular file; not opened"):
        reader(fifo)


def test_read_archive_folder_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="is a folder, not a regular file"):
        read_archive(tmp_path)


def test_read_archive_metadata_json_member_over_cap_refused_before_inflating(tmp_path: Path) -> None:
    big = _declared_size("metadata.json", 17 * 2**20, zipfile.ZIP_STORED)
    (tmp_path / "m.zip").write_bytes(big)
    for reader in (read_archive, read_archive_metadata):
        with pytest.raises(ModelFormatError, match=r"'metadata\.json' declares 17825792 bytes, more than the 16777216"):
            reader(tmp_path / "m.zip")


def test_read_archive_json_member_inflating_over_100x_refused(tmp_path: Path) -> None:
    padded = b'{"format_version": 1, "pad": "' + b" " * (4 * 2**20) + b'"}'  # valid JSON, 4 MiB, deflates ~1000x
    (tmp_path / "m.zip").write_bytes(_zip(_valid(metadata=padded), zipfile.ZIP_DEFLATED))
    with pytest.raises(ModelFormatError, match=r"'metadata\.json' would inflate .* \(over 100x\): a likely zip bomb"):
        read_archive_metadata(tmp_path / "m.zip")


def test_read_archive_metadata_header_over_1_mib_refused(tmp_path: Path) -> None:
    header = {"params": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"k": "v" * 2**20}}
    (tmp_path / "m.zip").write_bytes(_zip(_valid(params=_raw_st(header, b"\0" * 4))))
    with pytest.raises(ModelFormatError, match=r"header length field says \d+ bytes .*\(header cap 1048576\)"):
        read_archive_metadata(tmp_path / "m.zip")


def test_read_archive_member_with_empty_name_raises_model_format_error(tmp_path: Path) -> None:
    blob = bytearray(_zip(_valid()))
    pos = blob.find(b"PK\x01\x02")
    struct.pack_into("<H", blob, pos + 28, 0)  # the first central record's name length: 0
    (tmp_path / "m.zip").write_bytes(bytes(blob))
    with pytest.raises(ModelFormatError):
        read_archive(tmp_path / "m.zip")


# --- escapes the archive fuzzer found (bench/fuzz_archives.py), each now a ModelFormatError --------------------


def _saved_network_members(tmp_path: Path) -> dict[str, bytes]:
    from deepspark.config import Dense, InputType, NetworkConfig, Output
    from deepspark.data import Standardize

    net = Network(NetworkConfig(input_type=InputType.feed_forward(3), layers=(Dense(n_out=4), Output(n_out=2))))
    net.save(tmp_path / "sound.zip", normalizer=Standardize().fit(np.arange(12, dtype=np.float32).reshape(4, 3)))
    with zipfile.ZipFile(tmp_path / "sound.zip") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _edited_json(members: dict[str, bytes], name: str, **changes: Any) -> Members:
    doc = json.loads(members[name])
    doc.update(changes)
    return [(n, json.dumps(doc).encode() if n == name else data) for n, data in members.items()]


@pytest.mark.parametrize(
    ("member", "changes", "phrase"),
    [
        ("config.json", {"type": [1, 2]}, "type: expected a string tag for a network config, got [1, 2] (list)"),
        ("config.json", {"type": {}}, "type: expected a string tag"),
        ("config.json", {"l2": 1e308}, "l2: expected a finite number of at most 3.403e+38 (float32), got 1e+308"),
        ("normalizer.json", {"min_std": 10**400}, "min_std: expected a finite number"),
        ("normalizer.json", {"mean": [10**400, 0, 0]}, "mean: expected an array of numbers"),
    ],
)
def test_network_load_fuzzed_json_member_raises_model_format_error(
    tmp_path: Path, member: str, changes: dict[str, Any], phrase: str
) -> None:
    members = _saved_network_members(tmp_path)
    (tmp_path / "m.zip").write_bytes(_zip(_edited_json(members, member, **changes)))
    with pytest.raises(ModelFormatError) as info:
        Network.load(tmp_path / "m.zip")
    assert phrase in str(info.value)


def test_read_archive_zip_version_beyond_zipfile_raises_model_format_error(tmp_path: Path) -> None:
    blob = _patch_central(_zip(_valid()), "config.json", 6, "<H", 127)  # "version needed to extract": 12.7
    (tmp_path / "m.zip").write_bytes(blob)
    for reader in (read_archive, read_archive_metadata, Network.load):
        with pytest.raises(ModelFormatError, match="not a zip file, or truncated"):
            reader(tmp_path / "m.zip")
