"""The model archive format: a zip of JSON and safetensors members, written atomically and read defensively.

An archive holds exactly ``config.json``, ``params.safetensors`` and ``metadata.json``, and optionally
``updater.safetensors`` and ``normalizer.json``. Archives travel between people and clusters, so reading
treats the file as hostile: nothing in it is executed or unpickled, every size is bounded before
anything is inflated, and every failure is a ``ModelFormatError`` naming the member and a fix.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import secrets
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from typing import IO, Any, NoReturn

import fsspec
import numpy as np
import numpy.typing as npt
import safetensors.numpy
from fsspec.implementations.local import LocalFileSystem

from deepspark.errors import ModelFormatError

FORMAT_VERSION = 1
"""The newest archive format this deepspark writes and reads."""

DEFAULT_MAX_BYTES = 4 * 2**30
"""Default cap on the total uncompressed size of an archive (the zip-bomb guard)."""

CONFIG, PARAMS, UPDATER = "config.json", "params.safetensors", "updater.safetensors"
NORMALIZER, METADATA = "normalizer.json", "metadata.json"
_REQUIRED = (CONFIG, PARAMS, METADATA)
_ALLOWED = (CONFIG, PARAMS, UPDATER, NORMALIZER, METADATA)
_TENSOR_NAME = {PARAMS: "params", UPDATER: "updater_state"}
_DTYPES: dict[str, type[np.floating[Any]]] = {"F32": np.float32, "F64": np.float64}
_RATIO_LIMIT, _RATIO_MIN_BYTES = 1000, 2**20
_JSON_RATIO_LIMIT = 100  # JSON members deflate 2x (float lists) to ~30x (ResNet-50's config); a bomb, ~1000x
# Each JSON member (config, metadata, normalizer) at most: ResNet-50's config is 79 KB, a per-pixel normalizer of
# 224x224x3 images about 7 MB; parsing holds several times the text in memory, so the cap bounds that too.
_MAX_JSON_BYTES = 16 * 2**20
_MAX_HEADER = 2**20  # one tensor's safetensors header is ~100 bytes; safetensors itself allows 100 MB
_HEADER_SLACK = 2**16  # header bytes allowed beyond what the config implies (one tensor's entry and metadata)

TensorSizes = Callable[[str], Mapping[str, int]]
"""Given config.json's text, the most values each tensor member (``params.safetensors``,
``updater.safetensors``) may hold; members with no entry are bounded by ``max_bytes`` alone."""
_PROTOCOL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_log = logging.getLogger(__name__)
_FILE_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)

FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, kw_only=True, eq=False)
class Archive:
    """The contents of a model archive, validated on construction so that every instance can be written.

    Attributes:
        config_json: The network config as JSON object text; opaque here (``deepspark.config`` owns it).
        params: The flat parameter buffer, 1-D float32 or float64.
        updater_state: The flat optimizer state, same dtype as ``params``; ``None`` when not saved.
        normalizer_json: The data normalizer as JSON object text; ``None`` when the model has none.
        metadata: Free-form training info (``epoch``, ``iteration``, ``score``, ...). When read, it also
            holds ``format_version``, ``deepspark_version`` and ``created``; writing stamps those three.

    Example:
        >>> Archive(config_json='{"layers": []}', params=np.zeros(3, np.float32), metadata={"epoch": 2})
    """

    config_json: str
    params: FloatArray
    updater_state: FloatArray | None = None
    normalizer_json: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _loads_object(self.config_json, "config_json")
        _check_buffer(self.params, "params")
        if self.updater_state is not None:
            _check_buffer(self.updater_state, "updater_state")
            if self.updater_state.dtype != self.params.dtype:
                raise ModelFormatError(
                    f"updater_state has dtype {self.updater_state.dtype} but params has {self.params.dtype}: "
                    "both buffers must share one dtype"
                )
        if self.normalizer_json is not None:
            _loads_object(self.normalizer_json, "normalizer_json")
        if not isinstance(self.metadata, dict) or not all(isinstance(k, str) for k in self.metadata):
            raise ModelFormatError(f"metadata: expected a dict with str keys, got {self.metadata!r:.80}")


@dataclass(frozen=True, kw_only=True)
class ArchiveInfo:
    """What ``read_archive_metadata`` learns without reading the parameter buffers.

    Attributes:
        config_json: The network config JSON text.
        metadata: The archive metadata, ``format_version`` included.
        params_dtype: ``"float32"`` or ``"float64"``.
        num_params: Number of elements of the flat parameter buffer.
        members: Member name -> uncompressed size in bytes.
    """

    config_json: str
    metadata: dict[str, Any]
    params_dtype: str
    num_params: int
    members: dict[str, int]

    @property
    def has_updater(self) -> bool:
        """Whether the optimizer state was saved (training can resume exactly)."""
        return UPDATER in self.members

    @property
    def has_normalizer(self) -> bool:
        """Whether a data normalizer was saved with the model."""
        return NORMALIZER in self.members


def write_archive(path: str | os.PathLike[str], archive: Archive, *, overwrite: bool = True) -> None:
    """Write ``archive`` to a local path or an fsspec URL, never leaving a half-written archive there.

    Locally the zip is built in a temporary file next to the target, flushed to disk and renamed over
    it, so a crash leaves either the old file or the new one. For other fsspec URLs (``s3://``, ...)
    the zip is built in a local temporary file and uploaded in one piece; object stores publish an
    object only once its upload completes. ``metadata.json`` gets ``format_version``,
    ``deepspark_version`` and ``created`` (UTC) stamped over whatever ``archive.metadata`` holds.

    Args:
        path: Target path or URL (``memory://m.zip``, ``s3://bucket/m.zip``).
        archive: The contents to write.
        overwrite: When false, an existing target raises ``FileExistsError``.

    Raises:
        ModelFormatError: The metadata is not JSON-serializable.
        FileExistsError: The target exists and ``overwrite`` is false.

    Example:
        >>> write_archive("model.zip", Archive(config_json="{}", params=np.zeros(3, np.float32)))
    """
    members = _encode(archive)  # fails on bad input before anything is written
    target = os.fsdecode(path)
    fs, fs_path = fsspec.core.url_to_fs(target) if _PROTOCOL.match(target) else (None, target)
    if fs is None or isinstance(fs, LocalFileSystem):
        _write_local(fs_path, members, overwrite)
        return
    if not overwrite and fs.exists(fs_path):
        raise FileExistsError(f"{target} already exists: pass overwrite=True to replace it")
    with tempfile.TemporaryFile() as spool:
        _write_zip(spool, members)
        spool.seek(0)
        with fs.open(fs_path, "wb") as out:
            shutil.copyfileobj(spool, out, 16 * 2**20)


def read_archive(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES, expected: TensorSizes | None = None
) -> Archive:
    """Read and validate a model archive from a local path or an fsspec URL.

    Safe on hostile files: only the five known members are read (anything else, a pickle included,
    is refused unopened), sizes are checked against ``max_bytes`` before inflating (each JSON member
    against 16 MiB, each safetensors header against 1 MiB), and reads are bounded. A FIFO, device or
    folder at ``path`` is refused without being opened. Each tensor member's declared size must equal
    what its safetensors header implies, and with ``expected`` stay within what the config implies,
    before its body is inflated. NaN or inf parameters are loaded as is (a diverged model is still a
    model) and logged.

    Args:
        path: Archive path or URL.
        max_bytes: Cap on the total uncompressed size; raise it to load a model over 4 GiB.
        expected: Given config.json's text, the most values each tensor member may hold (``Network.load``
            derives them from the config's layers).

    Raises:
        ModelFormatError: The archive is corrupted, truncated, hostile or of a newer format, or ``path`` is
            not a regular file.
        FileNotFoundError: Nothing exists at ``path``.

    Example:
        >>> archive = read_archive("s3://models/mnist.zip")
        >>> archive.params.shape, archive.metadata["epoch"]
    """
    src = os.fsdecode(path)
    with _open_zip(src) as zf:
        infos = _check_directory(zf, src, max_bytes)
        config_json, metadata = _read_head(zf, infos, src)
        bounds = {} if expected is None else expected(config_json)
        for member in (PARAMS, UPDATER):  # every declared size checked before any tensor byte is inflated
            if member in infos:
                _check_tensor_size(zf, infos[member], src, bounds.get(member))
        params = _read_tensor(zf, infos[PARAMS], src)
        updater = _read_tensor(zf, infos[UPDATER], src) if UPDATER in infos else None
        normalizer = _read_json(zf, infos[NORMALIZER], src)[0] if NORMALIZER in infos else None
    if updater is not None and updater.dtype != params.dtype:
        raise _fail(src, f"{UPDATER} has dtype {updater.dtype} but {PARAMS} has {params.dtype}; they must match")
    with np.errstate(all="ignore"):  # a float64 sum is finite iff every element is, barring overflow
        finite = bool(np.isfinite(params.sum(dtype=np.float64))) or bool(np.isfinite(params).all())
    if not finite:
        _log.warning("%s: params hold NaN or inf values (the model diverged?); loaded as is", src)
    return Archive(
        config_json=config_json, params=params, updater_state=updater, normalizer_json=normalizer, metadata=metadata
    )


def read_archive_metadata(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> ArchiveInfo:
    """Read only the config, the metadata and the parameter count: cheap even for a multi-GiB model.

    The directory gets the same safety checks as ``read_archive`` (the JSON members and the safetensors
    header are bounded the same way); of the tensors only the safetensors header is read, so their bytes
    are not verified here.

    Example:
        >>> info = read_archive_metadata("model.zip")
        >>> info.num_params, info.metadata["created"]
    """
    src = os.fsdecode(path)
    with _open_zip(src) as zf:
        infos = _check_directory(zf, src, max_bytes)
        config_json, metadata = _read_head(zf, infos, src)
        dtype, count, _ = _tensor_header(zf, infos[PARAMS], src)
    members = {i.filename: i.file_size for i in infos.values()}
    return ArchiveInfo(
        config_json=config_json, metadata=metadata, params_dtype=dtype.__name__, num_params=count, members=members
    )


# --- writing -----------------------------------------------------------------------------------------


def _encode(archive: Archive) -> list[tuple[str, bytes, int]]:
    """The members as (name, bytes, compression): JSON deflated, tensors stored (big, incompressible)."""
    meta = dict(archive.metadata)
    meta.update(format_version=FORMAT_VERSION, deepspark_version=_deepspark_version(), created=_utc_now())
    try:
        meta_text = json.dumps(meta, indent=2, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"metadata is not JSON-serializable ({e}): use str, int, float, bool, list, dict") from e
    members = [
        (CONFIG, _utf8(archive.config_json, "config_json"), zipfile.ZIP_DEFLATED),
        (PARAMS, _tensor_bytes("params", archive.params), zipfile.ZIP_STORED),
    ]
    if archive.updater_state is not None:
        members.append((UPDATER, _tensor_bytes("updater_state", archive.updater_state), zipfile.ZIP_STORED))
    if archive.normalizer_json is not None:
        members.append((NORMALIZER, _utf8(archive.normalizer_json, "normalizer_json"), zipfile.ZIP_DEFLATED))
    members.append((METADATA, meta_text.encode("utf-8"), zipfile.ZIP_DEFLATED))
    return members


def _write_zip(fileobj: IO[bytes], members: list[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(fileobj, "w") as zf:
        for name, data, method in members:
            zf.writestr(name, data, compress_type=method)


def _write_local(target: str, members: list[tuple[str, bytes, int]], overwrite: bool) -> None:
    if not overwrite and os.path.exists(target):
        raise FileExistsError(f"{target} already exists: pass overwrite=True to replace it")
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any file the user creates.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_zip(f, members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable; not possible everywhere
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _tensor_bytes(name: str, array: FloatArray) -> bytes:
    # safetensors reads raw memory from data_ptr, so the buffer must be contiguous and little-endian.
    little = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return safetensors.numpy.save({name: little})


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ModelFormatError(f"{what} cannot be encoded as UTF-8 ({e})") from e


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):  # np.float32(score) and friends from training loops
        return value.item()
    raise TypeError(f"{type(value).__name__} value {value!r:.60} is not JSON-serializable")


@functools.lru_cache(maxsize=1)
def _deepspark_version() -> str:
    try:
        return importlib_metadata.version("deepspark")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- reading -----------------------------------------------------------------------------------------


def _fail(src: str, message: str) -> ModelFormatError:
    return ModelFormatError(f"model archive {src}: {message}")


def _raise(src: str, message: str) -> NoReturn:
    raise _fail(src, message)


@contextlib.contextmanager
def _open_zip(src: str) -> Iterator[zipfile.ZipFile]:
    """Open the archive; a missing file raises FileNotFoundError, anything not a sound zip ModelFormatError."""
    if not _PROTOCOL.match(src):
        _check_regular_file(src)
    with fsspec.open(src, "rb") if _PROTOCOL.match(src) else open(src, "rb") as raw:
        try:
            zf = zipfile.ZipFile(raw)
        except (
            zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error, NotImplementedError
        ) as e:  # NotImplementedError: a "version needed to extract" beyond zipfile's
            hint = "a model archive is the .zip that Network.save writes; if it was copied, copy it again"
            raise _fail(src, f"not a zip file, or truncated ({e}): {hint}") from e
        with zf:
            yield zf


def _check_regular_file(src: str) -> None:
    """Refuse a FIFO, device, socket or folder before opening it: opening a FIFO blocks until a writer comes."""
    mode = os.stat(src).st_mode  # FileNotFoundError for a missing file, as open() would raise
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        _raise(src, f"is a {kind}, not a regular file; not opened: pass the path of the .zip that Network.save wrote")


def _unsafe_name(name: str) -> bool:
    return name.startswith(("/", "\\")) or "\\" in name or "\0" in name or ":" in name or ".." in name.split("/")


def _check_directory(zf: zipfile.ZipFile, src: str, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """Refuse hostile or malformed directories before a single member byte is read."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    allowed = ", ".join(_ALLOWED)
    for info in infos:
        name = info.filename
        if not name:  # zipfile's is_dir() would raise IndexError on it
            _raise(src, "holds a member with an empty name (a corrupted directory entry): re-copy the file")
        if name.endswith("/"):
            _raise(src, f"holds a directory entry {name!r}; model archives hold only top-level files ({allowed})")
        if _unsafe_name(name) or info.orig_filename != name:
            _raise(src, f"member name {name!r} is an absolute or escaping path: refusing a possibly hostile file")
        if name not in _ALLOWED:
            hint = "re-save the model with deepspark; never load pickles from untrusted sources"
            _raise(src, f"unexpected member {name!r} (not opened); archives hold only {allowed}: {hint}")
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        _raise(src, f"duplicate member names {duplicates}: the archive is ambiguous, possibly tampered with")
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        _raise(src, f"missing required member {missing[0]!r}; present: {sorted(names)}")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        hint = "pass a larger max_bytes if you trust this file"
        _raise(src, f"members declare {total} bytes uncompressed, more than max_bytes={max_bytes}: {hint}")
    for info in infos:
        if info.flag_bits & 0x1:
            _raise(src, f"member {info.filename!r} is encrypted; deepspark archives are never encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            method = info.compress_type
            _raise(src, f"member {info.filename!r} uses compression method {method}, not stored or deflated")
        if info.filename.endswith(".json") and info.file_size > _MAX_JSON_BYTES:
            _raise(
                src,
                f"member {info.filename!r} declares {info.file_size} bytes, more than the {_MAX_JSON_BYTES} a JSON "
                "member may hold: corrupted or hostile, not inflated; re-save the model",
            )
        limit = _RATIO_LIMIT if info.filename.endswith(".safetensors") else _JSON_RATIO_LIMIT
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > limit * max(info.compress_size, 1):
            sizes = f"{info.compress_size} bytes to {info.file_size}"
            _raise(src, f"member {info.filename!r} would inflate {sizes} (over {limit}x): a likely zip bomb")
    return {i.filename: i for i in infos}


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: str) -> bytes:
    """The member's bytes, read with a bound: never more than the declared size plus one byte."""
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError, zlib.error) as e:
        raise _fail(src, f"member {info.filename!r} is corrupted ({e}): re-copy the file or re-save the model") from e
    if len(data) != info.file_size:
        got = "more" if len(data) > info.file_size else len(data)
        _raise(src, f"member {info.filename!r} holds {got} bytes but declares {info.file_size}: corrupted or tampered")
    return data


def _read_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: str) -> tuple[str, dict[str, Any]]:
    raw = _read_member(zf, info, src)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(src, f"{info.filename} is not valid UTF-8 ({e})") from e
    try:
        return text, _loads_object(text, info.filename)
    except ModelFormatError as e:
        raise _fail(src, str(e)) from e


def _read_head(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], src: str) -> tuple[str, dict[str, Any]]:
    """The config text and the metadata, with the format version checked first."""
    _, metadata = _read_json(zf, infos[METADATA], src)
    if "format_version" not in metadata:
        _raise(src, f"{METADATA} has no 'format_version': not a deepspark model archive")
    version = metadata["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        _raise(src, f"{METADATA} 'format_version' must be an int, got {_json_type(version)} {version!r:.40}")
    if version > FORMAT_VERSION:
        _raise(
            src, f"archive format {version} is newer than this deepspark supports ({FORMAT_VERSION}): upgrade deepspark"
        )
    if version < 1:
        _raise(src, f"{METADATA} 'format_version' {version} is invalid; formats start at 1")
    for key in ("deepspark_version", "created"):
        if key in metadata and not isinstance(metadata[key], str):
            _raise(src, f"{METADATA} {key!r} must be a string, got {_json_type(metadata[key])}")
    config_json, _ = _read_json(zf, infos[CONFIG], src)
    return config_json, metadata


def _header_length(head: bytes, member_size: int, member: str, src: str) -> int:
    """The safetensors header length, checked against the member size before anything is allocated."""
    if len(head) < 8:
        _raise(src, f"{member}: {len(head)} bytes is too short for a safetensors file")
    (length,) = struct.unpack("<Q", head[:8])
    if length > min(member_size - 8, _MAX_HEADER):
        limit = f"the member holds {member_size} (header cap {_MAX_HEADER})"
        _raise(src, f"{member}: safetensors header length field says {length} bytes but {limit}: corrupted")
    return int(length)


def _tensor_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: str) -> tuple[type[np.floating[Any]], int, int]:
    """Dtype, element count and header length of a tensor member, inflating only its header."""
    member = info.filename
    try:
        with zf.open(info) as f:
            head = f.read(8)
            length = _header_length(head, info.file_size, member, src)
            header = f.read(length)
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError, zlib.error) as e:
        raise _fail(src, f"member {member!r} is corrupted ({e}): re-copy the file or re-save the model") from e
    if len(header) != length:
        _raise(src, f"{member}: the safetensors header is truncated ({len(header)} of {length} bytes)")
    dtype, count = _check_header(header, member, src)
    return dtype, count, length


def _check_tensor_size(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: str, most: int | None) -> None:
    """The member's declared size against the config's bound and its own header, before its body is inflated."""
    member = info.filename
    if most is not None:
        bound = 8 + _HEADER_SLACK + most * np.dtype(np.float64).itemsize
        if info.file_size > bound:
            _raise(
                src,
                f"{member} declares {info.file_size} bytes uncompressed, but the config builds at most {most} values "
                f"(at most {bound} bytes with the header): corrupted or hostile, not inflated; re-save the model",
            )
    dtype, count, length = _tensor_header(zf, info, src)
    if most is not None and count > most:
        _raise(
            src,
            f"{member} holds {count} values but the config builds a network with at most {most}; the archive "
            "is inconsistent",
        )
    implied = 8 + length + count * np.dtype(dtype).itemsize
    if info.file_size != implied:
        _raise(
            src,
            f"{member} declares {info.file_size} bytes uncompressed, but its safetensors header implies {implied} "
            f"({count} {np.dtype(dtype).name} values): corrupted or tampered, not inflated; re-save the model",
        )


def _check_header(header: bytes, member: str, src: str) -> tuple[type[np.floating[Any]], int]:
    """Dtype and element count of the member's one tensor, from its safetensors header."""
    tensor = _TENSOR_NAME[member]
    try:
        entries = _loads_object(header.decode("utf-8"), f"{member} header")
    except (UnicodeDecodeError, ModelFormatError) as e:
        raise _fail(src, f"invalid safetensors header in {member} ({e})") from e
    names = sorted(k for k in entries if k != "__metadata__")
    if names != [tensor]:
        _raise(src, f"{member} must hold exactly one tensor named {tensor!r}; it holds {names}")
    entry = entries[tensor]
    dtype = entry.get("dtype") if isinstance(entry, dict) else None
    if dtype not in _DTYPES:
        _raise(src, f"{member}: tensor {tensor!r} has dtype {dtype!r}; expected F32 or F64 (float32 or float64)")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0):
        _raise(src, f"{member}: tensor {tensor!r} has shape {shape!r}; expected a 1-D flat buffer")
    return _DTYPES[dtype], shape[0]


def _read_tensor(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: str) -> FloatArray:
    member, tensor = info.filename, _TENSOR_NAME[info.filename]
    data = _read_member(zf, info, src)
    length = _header_length(data[:8], len(data), member, src)
    dtype, count = _check_header(data[8 : 8 + length], member, src)
    try:
        loaded = safetensors.numpy.load(data)
    except Exception as e:  # the Rust parser's error types vary by version; all mean a malformed file
        raise _fail(src, f"invalid safetensors data in {member} ({e}): re-save the model") from e
    del data
    array = loaded.get(tensor)
    if array is None or len(loaded) != 1 or array.dtype != dtype or array.shape != (count,):
        _raise(src, f"{member}: safetensors data disagrees with its header; the file is corrupted")
    return array if array.flags.writeable else array.copy()


# --- validation shared by reading and Archive ---------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [k for k, c in Counter(k for k, _ in pairs).items() if c > 1]
        raise ValueError(f"duplicate key {keys[0]!r}")
    return result


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "null" if value is None else type(value).__name__)


def _loads_object(text: str, what: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ModelFormatError(f"{what}: expected JSON text (str), got {type(text).__name__}")
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as e:
        raise ModelFormatError(f"{what} is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise ModelFormatError(f"{what} must hold a JSON object, got a JSON {_json_type(value)}")
    return value


def _check_buffer(array: object, what: str) -> None:
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype not in (np.float32, np.float64):
        desc = f"{array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ModelFormatError(f"{what}: expected a 1-D float32 or float64 array, got {desc}")
