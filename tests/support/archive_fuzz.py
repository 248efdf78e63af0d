"""A seeded mutation fuzzer for model archives: mutate a sound archive, feed it to every archive reader.

Each case is one mutation of a base archive (a small trained network saved with its updater state and a
normalizer), chosen and carried out by a ``random.Random`` seeded from ``(seed, case)`` so any case can be
replayed alone. Every reader must either load the file or raise ``ModelFormatError``; anything else is an
escape. A live pickle payload is planted in some cases: unpickling it would create a marker file, so the
marker's absence proves nothing was executed. Peak memory per case is measured twice: the tracemalloc peak
(Python and numpy allocations) and the rise of the process's peak RSS (``VmHWM``, reset per case through
``/proc/self/clear_refs`` where the kernel allows it).

Used by ``bench/fuzz_archives.py`` (10,000 cases) and ``tests/unit/io/test_archive_fuzz.py`` (500 cases).
"""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import random
import struct
import tracemalloc
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.config import Adam, Dense, InputType, NetworkConfig, Output
from deepspark.data import Standardize
from deepspark.errors import ModelFormatError
from deepspark.io import read_archive, read_archive_metadata
from deepspark.nn import Network

Member = tuple[str, bytes, int]  # name, uncompressed bytes, compression method
Reader = Callable[[Path], object]

READERS: dict[str, Reader] = {
    "Network.load": Network.load,
    "read_archive": read_archive,
    "read_archive_metadata": read_archive_metadata,
}
ALLOWED = ("config.json", "params.safetensors", "updater.safetensors", "normalizer.json", "metadata.json")
JSON_MEMBERS = ("config.json", "metadata.json", "normalizer.json")
TENSOR_MEMBERS = ("params.safetensors", "updater.safetensors")
KINDS = (
    "bit_flip",
    "byte_overwrite",
    "truncate",
    "member_swap",
    "member_remove",
    "member_duplicate",
    "member_rename",
    "pickle_member",
    "json_edit",
    "tensor_header_edit",
    "size_lie",
    "zip_bomb",
)


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: the payload an attacker would plant, made harmless."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def base_archive(directory: Path) -> Path:
    """A sound archive of a small trained network with updater state, normalizer and labels."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    conf = NetworkConfig(
        seed=0,
        updater=Adam(learning_rate=1e-2),
        input_type=InputType.feed_forward(6),
        layers=(Dense(n_out=12, activation="relu"), Dense(n_out=8, activation="tanh"), Output(n_out=3)),
    )
    net = Network(conf)
    net.fit(x, y, epochs=1, batch_size=16)
    net.labels = ("low", "mid", "high")
    path = directory / "base.zip"
    net.save(path, normalizer=Standardize().fit(x))
    members = []  # the same bytes on every run, so that a case replays exactly: fixed stamps and times
    for name, data, method in read_members(path.read_bytes()):
        if name == "metadata.json":
            meta = json.loads(data)
            meta.update(created="2026-01-01T00:00:00+00:00", deepspark_version="0.1.0")
            data = json.dumps(meta, indent=2, sort_keys=True).encode()
        members.append((name, data, method))
    path.write_bytes(write_members(members))
    return path


def read_members(blob: bytes) -> list[Member]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return [(i.filename, zf.read(i), i.compress_type) for i in zf.infolist()]


def write_members(members: list[Member]) -> bytes:
    """The zip of ``members``, byte for byte the same on every run (fixed timestamps)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are planted on purpose
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, method in members:
                zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


# --- the mutations: each takes the base zip bytes, its members and an rng, returns the mutated bytes -------


def _bit_flip(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = bytearray(blob)
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def _byte_overwrite(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = bytearray(blob)
    pos = rng.randrange(len(out))
    run = rng.choice((1, 2, 4, 8, 16))
    fill = rng.choice((b"\x00", b"\xff", b"\x7f", b"\x80", bytes([rng.randrange(256)])))
    out[pos : pos + run] = fill * min(run, len(out) - pos)
    return bytes(out)


def _truncate(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    cut = rng.choice((0, 1, 4, 22, rng.randrange(len(blob)), len(blob) - rng.randrange(1, 64)))
    return blob[: max(0, cut)]


def _member_swap(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    i, j = rng.sample(range(len(members)), 2)
    out = list(members)
    (ni, di, mi), (nj, dj, mj) = out[i], out[j]
    if rng.random() < 0.5:  # swap contents under the same names
        out[i], out[j] = (ni, dj, mj), (nj, di, mi)
    else:  # swap order only (a valid archive that must still load)
        out[i], out[j] = out[j], out[i]
    return write_members(out)


def _member_remove(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = list(members)
    del out[rng.randrange(len(out))]
    return write_members(out)


def _member_duplicate(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = list(members)
    name, data, method = out[rng.randrange(len(out))]
    other = data if rng.random() < 0.5 else out[rng.randrange(len(out))][1]
    out.insert(rng.randrange(len(out) + 1), (name, other, method))
    return write_members(out)


_HOSTILE_NAMES = (
    "../config.json", "/etc/passwd", "a/../../b", "c:\\x", "models/", "Config.json", "config.json\0.txt",
    "params.safetensors/", "config.json ", "model.pt", "data.pkl", "./metadata.json", "\\params.safetensors",
)  # fmt: skip


def _member_rename(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = list(members)
    i = rng.randrange(len(out))
    _, data, method = out[i]
    new = rng.choice((*_HOSTILE_NAMES, *ALLOWED))
    out[i] = (new, data, method)
    return write_members(out)


def _pickle_member(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    payload = pickle.dumps(_TouchOnUnpickle(str(ctx.marker)), protocol=rng.choice((2, 4, 5)))
    out = list(members)
    if rng.random() < 0.5:  # the payload in place of a member's bytes
        i = rng.randrange(len(out))
        out[i] = (out[i][0], payload, out[i][2])
    else:  # the payload as an extra member, as torch.save would write it
        out.insert(rng.randrange(len(out) + 1), (rng.choice(("data.pkl", "model.pt", "archive/data.pkl")), payload, 0))
    return write_members(out)


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: True,
        lambda: -1,
        lambda: 0,
        lambda: 2**70,
        lambda: -(2**63),
        lambda: 1e308,
        lambda: -0.5,
        lambda: "",
        lambda: "x" * rng.choice((1, 100, 10_000)),
        lambda: "dense",
        lambda: "softmax",
        lambda: [],
        lambda: {},
        lambda: [1] * rng.choice((1, 3, 1000)),
        lambda: {"type": rng.choice(("dense", "output", "conv2d", "lstm", "nope", "module"))},
    ]
    if depth < 2:
        choices.append(lambda: [_json_value(rng, depth + 1) for _ in range(rng.randrange(1, 4))])
        choices.append(lambda: {str(rng.randrange(5)): _json_value(rng, depth + 1)})
    return rng.choice(choices)()


def _edit(node: Any, rng: random.Random) -> Any:
    """One random edit somewhere in a parsed JSON value: replace, delete or add a value, or deepen it."""
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(sorted(node))
        roll = rng.random()
        if roll < 0.15:
            del node[key]
        elif roll < 0.55 and isinstance(node[key], (dict, list)) and node[key]:
            node[key] = _edit(node[key], rng)
        else:
            node[key] = _json_value(rng)
        return node
    if isinstance(node, list) and node and rng.random() < 0.7:
        i = rng.randrange(len(node))
        roll = rng.random()
        if roll < 0.15:
            del node[i]
        elif roll < 0.3:
            node.insert(i, node[i])
        elif roll < 0.65 and isinstance(node[i], (dict, list)) and node[i]:
            node[i] = _edit(node[i], rng)
        else:
            node[i] = _json_value(rng)
        return node
    if isinstance(node, dict):
        node[rng.choice(("extra", "format_version", "type", "n_out", "layers"))] = _json_value(rng)
        return node
    return _json_value(rng)


def _json_edit(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = list(members)
    candidates = [i for i, m in enumerate(out) if m[0] in JSON_MEMBERS]
    i = rng.choice(candidates)
    name, data, method = out[i]
    roll = rng.random()
    if roll < 0.08:
        text = "[" * rng.choice((1000, 100_000)) + "]" * rng.choice((0, 1000))  # deep nesting
    elif roll < 0.14:
        text = data.decode("utf-8")[: rng.randrange(len(data))]  # cut JSON
    elif roll < 0.18:
        text = rng.choice(("NaN", "[]", '"x"', "null", "1", '{"a": 1, "a": 2}', "{\"a\": \"\\ud800\"}"))
    else:
        text = json.dumps(_edit(json.loads(data), rng))
    raw = text.encode("utf-8", "surrogatepass") if roll >= 0.18 or rng.random() < 0.9 else b"\xff\xfe" + data
    out[i] = (name, raw, method)
    return write_members(out)


def _tensor_header_edit(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    out = list(members)
    i = rng.choice([i for i, m in enumerate(out) if m[0] in TENSOR_MEMBERS])
    name, data, method = out[i]
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + length]), data[8 + length :]
    roll = rng.random()
    if roll < 0.2:  # the length field lies
        new_len = rng.choice((0, 1, length - 1, length + 1, len(data), 2**31, 2**63, 2**64 - 1))
        out[i] = (name, struct.pack("<Q", new_len) + data[8:], method)
        return write_members(out)
    tensor = next(k for k in header if k != "__metadata__")
    entry = header[tensor]
    if roll < 0.35:
        entry["dtype"] = rng.choice(("F16", "F64", "F32", "I64", "BOOL", "U8", "BF16", "X", 5))
    elif roll < 0.55:
        count = entry["shape"][0]
        entry["shape"] = rng.choice(
            ([count + 1], [count * 2], [count // 2], [2**40], [2**62], [-1], [], [count, 1], [1, count], ["4"], None)
        )
    elif roll < 0.7:
        start, end = entry["data_offsets"]
        entry["data_offsets"] = rng.choice(([start, end + 4], [start + 4, end], [end, start], [0, 2**60], [0], None))
    elif roll < 0.8:
        header[rng.choice(("extra", tensor + "2", "params", "updater_state"))] = dict(entry)
    elif roll < 0.9:
        header["__metadata__"] = {"k": "v" * rng.choice((10, 10_000, 200_000))}
    else:
        header = {rng.choice(("weights", "", "params ")): entry}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    out[i] = (name, struct.pack("<Q", len(text)) + text + body, method)
    return write_members(out)


_CENTRAL_FIELDS = {  # offset in the central directory record -> (struct format, name)
    6: "<H",  # version needed to extract
    8: "<H",  # general purpose flags
    10: "<H",  # compression method
    16: "<I",  # crc-32
    20: "<I",  # compressed size
    24: "<I",  # uncompressed size
    42: "<I",  # local header offset
}
_LOCAL_FIELDS = {4: "<H", 6: "<H", 8: "<H", 14: "<I", 18: "<I", 22: "<I", 26: "<H", 28: "<H"}


def _size_lie(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    """Rewrite a size, CRC, method, flag or offset field in a central or local header of a deflated archive."""
    if rng.random() < 0.5:
        blob = write_members([(n, d, zipfile.ZIP_DEFLATED) for n, d, _ in members])
    out = bytearray(blob)
    central = rng.random() < 0.7
    signature, fields = (b"PK\x01\x02", _CENTRAL_FIELDS) if central else (b"PK\x03\x04", _LOCAL_FIELDS)
    positions = [p for p in range(len(out)) if out.startswith(signature, p)]
    if not positions:
        return bytes(out)
    pos = rng.choice(positions)
    offset = rng.choice(sorted(fields))
    fmt = fields[offset]
    (current,) = struct.unpack_from(fmt, out, pos + offset)
    top = 2 ** (8 * struct.calcsize(fmt)) - 1
    value = rng.choice((0, 1, current - 1, current + 1, current * 2, current * 1000, top, top - 1, rng.randrange(top)))
    struct.pack_into(fmt, out, pos + offset, min(max(value, 0), top))
    return bytes(out)


def _bomb_payload(size: int, ratio_target: int | None, json_shaped: bool) -> bytes:
    """``size`` highly compressible bytes; with ``ratio_target``, noise keeps deflate near that ratio."""
    if json_shaped:
        body = b'{"a": [' + b"0," * ((size - 12) // 2) + b"0]}"
    else:
        body = bytearray(size)
        if ratio_target is not None:
            noise = random.Random(size).randbytes(size // ratio_target)
            step = max(1, size // max(len(noise), 1))
            for k, byte in enumerate(noise):
                body[k * step] = byte
        body = bytes(body)
    return body


def _zip_bomb(blob: bytes, members: list[Member], rng: random.Random, ctx: FuzzContext) -> bytes:
    name = rng.choice(ALLOWED)
    size, ratio, json_shaped = rng.choice(ctx.bomb_shapes)
    payload = ctx.bomb(size, ratio, json_shaped)
    out = [(n, d, m) for n, d, m in members if n != name]
    out.insert(rng.randrange(len(out) + 1), (name, payload, zipfile.ZIP_DEFLATED))
    return write_members(out)


MUTATIONS: dict[str, Callable[[bytes, list[Member], random.Random, FuzzContext], bytes]] = {
    "bit_flip": _bit_flip,
    "byte_overwrite": _byte_overwrite,
    "truncate": _truncate,
    "member_swap": _member_swap,
    "member_remove": _member_remove,
    "member_duplicate": _member_duplicate,
    "member_rename": _member_rename,
    "pickle_member": _pickle_member,
    "json_edit": _json_edit,
    "tensor_header_edit": _tensor_header_edit,
    "size_lie": _size_lie,
    "zip_bomb": _zip_bomb,
}
assert tuple(MUTATIONS) == KINDS


@dataclass
class FuzzContext:
    """Per-run state: the marker a pickle payload would create, and a cache of bomb payloads."""

    marker: Path
    bomb_shapes: tuple[tuple[int, int | None, bool], ...] = (
        (900 * 1024, None, False),  # under the ratio check's minimum size: inflates freely
        (4 * 2**20, None, False),  # zeros, over 1000x: refused by the ratio check
        (24 * 2**20, 900, False),  # just under the 1000x ratio limit
        (8 * 2**20, 500, False),
        (12 * 2**20, None, True),  # valid JSON that inflates and parses into millions of objects
    )
    _bombs: dict[tuple[int, int | None, bool], bytes] = field(default_factory=dict)

    def bomb(self, size: int, ratio: int | None, json_shaped: bool) -> bytes:
        key = (size, ratio, json_shaped)
        if key not in self._bombs:
            self._bombs[key] = _bomb_payload(size, ratio, json_shaped)
        return self._bombs[key]


def mutate(blob: bytes, members: list[Member], seed: int, case: int, ctx: FuzzContext) -> tuple[str, bytes]:
    """Case ``case`` of run ``seed``: its mutation kind and the mutated archive bytes (deterministic)."""
    rng = random.Random(f"{seed}:{case}")
    kind = KINDS[rng.randrange(len(KINDS))]
    return kind, MUTATIONS[kind](blob, members, rng, ctx)


# --- running cases and measuring them ---------------------------------------------------------------------


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class CaseResult:
    case: int
    kind: str
    size: int
    outcomes: dict[str, str]  # reader -> "loaded" | "ModelFormatError" | "ESCAPE <type>: <message>"
    traced_peak: int  # bytes the readers allocated at most at once, tracemalloc
    rss_rise: int  # bytes the peak RSS rose above the RSS at the start of the case (-1: not measurable)
    executed: bool


def run_case(path: Path, kind: str, case: int, blob: bytes, ctx: FuzzContext, rss: bool) -> CaseResult:
    path.write_bytes(blob)
    outcomes: dict[str, str] = {}
    rss_ok = rss and _peak_rss_reset()
    start_rss = _current_rss_kib() if rss_ok else 0
    tracemalloc.reset_peak()
    held, _ = tracemalloc.get_traced_memory()  # the fuzzer's own buffers (this case's bytes, cached bombs)
    for name, reader in READERS.items():
        try:
            reader(path)
            outcomes[name] = "loaded"
        except ModelFormatError:
            outcomes[name] = "ModelFormatError"
        except Exception as e:
            outcomes[name] = f"ESCAPE {type(e).__name__}: {str(e)[:200]}"
    _, peak = tracemalloc.get_traced_memory()
    rise = (_peak_rss_kib() - start_rss) * 1024 if rss_ok else -1
    executed = ctx.marker.exists()
    return CaseResult(case, kind, len(blob), outcomes, peak - held, rise, executed)


def run(seed: int, cases: int, workdir: Path, *, rss: bool = True, first: int = 0) -> Iterator[CaseResult]:
    """Run ``cases`` cases of ``seed`` (from case ``first``) in ``workdir``; yields one result per case."""
    base = base_archive(workdir)
    blob = base.read_bytes()
    members = read_members(blob)
    ctx = FuzzContext(marker=workdir / "pwned")
    target = workdir / "case.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN-params warnings and the like are outcomes, not failures
        Network.load(base)  # warm imports and caches before anything is measured
        tracemalloc.start()
        try:
            for case in range(first, first + cases):
                kind, mutated = mutate(blob, members, seed, case, ctx)
                yield run_case(target, kind, case, mutated, ctx, rss)
        finally:
            tracemalloc.stop()


def memory_bound(base_size: int) -> int:
    """The most a case may allocate: a fixed allowance for building the network plus 256 x the base archive."""
    return 64 * 2**20 + 256 * base_size


def summarize(results: list[CaseResult]) -> dict[str, Any]:
    per_kind: Counter[tuple[str, str]] = Counter()
    per_reader: Counter[tuple[str, str]] = Counter()
    for r in results:
        for reader, outcome in r.outcomes.items():
            label = outcome.split(":")[0]
            per_kind[(r.kind, label)] += 1
            per_reader[(reader, label)] += 1
    return {"per_kind": per_kind, "per_reader": per_reader}


__all__ = [
    "KINDS",
    "READERS",
    "CaseResult",
    "FuzzContext",
    "base_archive",
    "memory_bound",
    "mutate",
    "run",
    "run_case",
    "summarize",
]
