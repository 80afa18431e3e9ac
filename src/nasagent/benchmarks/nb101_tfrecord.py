"""NAS-Bench-101 from the official TFRecord file, read without TensorFlow.

TFRecord framing: an 8-byte little-endian length, a masked CRC-32C of those 8 bytes, the payload, and a
masked CRC-32C of the payload. Each NB101 payload is a JSON list
``[module_hash, epochs, adjacency_bits, "op,op,...", base64(ModelMetrics protobuf)]``; the protobuf is
decoded by the small wire-format reader below. Repeated trainings of one cell are averaged.

The parsed table is cached as ``.npz`` next to the file (or in ``~/.cache/nasagent``) so a 500 MB file is
read once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Metric, TableBenchmark
from nasagent.core import NasagentError
from nasagent.spaces.nb101 import NB101Space

# -- CRC-32C (Castagnoli), table-driven -----------------------------------------------------------------
_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str | Path, verify_data: bool = False) -> Iterator[bytes]:
    """Yield the payloads of a TFRecord file. Length CRCs are always checked; payload CRCs on request
    (pure-Python CRC is slow on the 500 MB official file)."""
    with open(path, "rb") as f:
        n = 0
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise NasagentError(f"{path}: truncated TFRecord header at record {n}")
            (length,) = struct.unpack("<Q", head[:8])
            (len_crc,) = struct.unpack("<I", head[8:])
            if masked_crc(head[:8]) != len_crc:
                raise NasagentError(f"{path}: record {n} has a bad length checksum; this is not a TFRecord file or it is corrupt")
            data = f.read(length)
            tail = f.read(4)
            if len(data) < length or len(tail) < 4:
                raise NasagentError(f"{path}: truncated record {n}")
            if verify_data and masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise NasagentError(f"{path}: record {n} has a bad data checksum (corrupt file)")
            n += 1
            yield data


def write_records(path: str | Path, payloads) -> None:
    """Write payloads in TFRecord framing (used by tests and for small exported tables)."""
    with open(path, "wb") as f:
        for data in payloads:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", masked_crc(head)) + data + struct.pack("<I", masked_crc(data)))


# -- protobuf wire format (just what ModelMetrics needs) ------------------------------------------------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val = struct.unpack("<d", buf[i : i + 8])[0]
            i += 8
        elif wire == 2:
            ln, i = _varint(buf, i)
            val = buf[i : i + ln]
            i += ln
        elif wire == 5:
            val = struct.unpack("<f", buf[i : i + 4])[0]
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


_EVAL_FIELDS = {1: "epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}


def decode_model_metrics(buf: bytes) -> dict:
    """ModelMetrics{repeated EvaluationData evaluation_data = 1; int32 trainable_parameters = 2;
    double total_time = 3} with EvaluationData{double current_epoch = 1, training_time = 2,
    train_accuracy = 3, validation_accuracy = 4, test_accuracy = 5; string checkpoint_path = 6}."""
    out: dict = {"evaluation_data": []}
    for num, _, val in _fields(buf):
        if num == 1:
            ev = {_EVAL_FIELDS[n]: v for n, _, v in _fields(val) if n in _EVAL_FIELDS}
            out["evaluation_data"].append(ev)
        elif num == 2:
            out["trainable_parameters"] = int(val)
        elif num == 3:
            out["total_time"] = float(val)
    return out


def encode_model_metrics(evaluations: list[dict], params: int, total_time: float) -> bytes:
    """Inverse of ``decode_model_metrics`` (tests write small NB101-format files with it)."""

    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def dbl(num: int, v: float) -> bytes:
        return varint(num << 3 | 1) + struct.pack("<d", v)

    msg = b""
    for ev in evaluations:
        inner = b"".join(dbl(n, ev[name]) for n, name in _EVAL_FIELDS.items() if name in ev)
        msg += varint(1 << 3 | 2) + varint(len(inner)) + inner
    return msg + varint(2 << 3 | 0) + varint(params) + dbl(3, total_time)


# -- the table --------------------------------------------------------------------------------------
_COLS = ("valid_accuracy", "test_accuracy", "train_accuracy", "training_time", "params", "nodes")


def parse_nb101(path: str | Path, epochs: int = 108, verify_data: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
    sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(_COLS)))
    counts: dict[str, int] = defaultdict(int)
    seen_epochs: set[int] = set()
    for n, payload in enumerate(read_records(path, verify_data)):
        try:
            module_hash, ep, adj, _ops, metrics_b64 = json.loads(payload.decode())
            metrics = decode_model_metrics(base64.b64decode(metrics_b64))
            final = metrics["evaluation_data"][-1]
        except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
            raise NasagentError(f"{path}: record {n} is not an NB101 record ({type(e).__name__}: {e})") from None
        seen_epochs.add(int(ep))
        if int(ep) != epochs:
            continue
        sums[module_hash] += [
            final.get("validation_accuracy", np.nan),
            final.get("test_accuracy", np.nan),
            final.get("train_accuracy", np.nan),
            final.get("training_time", np.nan),
            metrics.get("trainable_parameters", np.nan),
            round(len(adj) ** 0.5),
        ]
        counts[module_hash] += 1
    if not counts:
        if not seen_epochs:
            raise NasagentError(f"{path} holds no records")
        raise NasagentError(f"{path} has no results at {epochs} epochs; epochs present: {sorted(seen_epochs)}")
    keys = sorted(counts)
    arr = np.array([sums[k] / counts[k] for k in keys])
    return keys, {c: arr[:, i] for i, c in enumerate(_COLS)}


def _cache_path(path: Path, epochs: int) -> Path:
    st = path.stat()
    tag = hashlib.md5(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{epochs}".encode()).hexdigest()[:16]
    beside = path.with_suffix(f".nasagent-{tag}.npz")
    try:
        beside.parent.joinpath(".nasagent-write-test").touch()
        beside.parent.joinpath(".nasagent-write-test").unlink()
        return beside
    except OSError:
        home = Path.home() / ".cache" / "nasagent"
        home.mkdir(parents=True, exist_ok=True)
        return home / f"nb101-{tag}.npz"


def nb101_benchmark(path: str | Path, epochs: int = 108, max_nodes: int = 7, cache: bool = True) -> TableBenchmark:
    path = Path(path)
    if not path.exists():
        raise NasagentError(
            f"NB101 file {path} does not exist; download nasbench_only108.tfrecord from the NB101 release and pass its path"
        )
    if path.is_dir():
        raise NasagentError(f"NB101 file {path} is a folder; pass the nasbench_only108.tfrecord file itself")
    cp = _cache_path(path, epochs) if cache else None
    if cp is not None and cp.exists():
        z = np.load(cp, allow_pickle=False)
        keys, cols = [str(k) for k in z["keys"]], {c: z[c] for c in _COLS}
    else:
        keys, cols = parse_nb101(path, epochs)
        if cp is not None:
            np.savez(cp, keys=np.array(keys), **cols)
    keep = np.flatnonzero(cols.pop("nodes") <= max_nodes)
    keys = [keys[i] for i in keep]
    cols = {c: v[keep] for c, v in cols.items()}
    return TableBenchmark(
        name=f"nb101:{path.name}",
        space=NB101Space(max_nodes=max_nodes),
        metrics={
            "valid_accuracy": Metric("valid_accuracy", "max", f"validation accuracy at {epochs} epochs", report="test_accuracy"),
            "test_accuracy": Metric("test_accuracy", "max", f"test accuracy at {epochs} epochs (report only)"),
            "train_accuracy": Metric("train_accuracy", "max", "training accuracy"),
            "training_time": Metric("training_time", "min", "training seconds (TPU)"),
            "params": Metric("params", "min", "trainable parameters"),
        },
        default_metric="valid_accuracy",
        keys=keys,
        columns=cols,
        cost_metric="training_time",
        notes=f"NB101 from {path}: mean over repeats at {epochs} epochs; cost = training seconds",
    )
