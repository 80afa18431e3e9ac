"""NAS-Bench-201 tables: the embedded one (from the ``analog-nasbench`` package) and a user's CSV.

The embedded table holds all 15,625 cells with CIFAR-10 test accuracy (the default objective) and the
post-training-quantised, quantisation-aware, noisy and analog accuracies, plus accuracy after drift
(60 s, 1 h, 1 day, 30 days) on digital and analog hardware. It has no training times, so each sample costs 1.

Facts about the package file (verified against the official NB201 table, see docs/benchmarks.md):
op ids are ``0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3`` and the 6-tuple
stores edges in the order (1<-0), (2<-0), (3<-0), (2<-1), (3<-1), (3<-2).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Metric, TableBenchmark
from nasagent.core import NasagentError
from nasagent.spaces.nb201 import NB201Space

ANALOG_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: position in our (official) edge order -> position in the package's tuple
ANALOG_POSITION = (0, 1, 3, 2, 4, 5)

_DRIFT_TIMES = {"60": "1m", "3600": "1h", "86400": "1d", "2592000": "30d"}
_METRICS = {
    "accuracy": "CIFAR-10 test accuracy (%), full-precision training",
    "ptq_accuracy": "accuracy after post-training quantisation (%)",
    "qat_accuracy": "accuracy with quantisation-aware training (%)",
    "noisy_accuracy": "accuracy with weight noise injected at inference (%)",
    "analog_accuracy": "accuracy on simulated analog in-memory hardware (%)",
}
for _hw in ("baseline", "analog"):
    for _sec, _label in _DRIFT_TIMES.items():
        _METRICS[f"{_hw}_drift_{_label}"] = f"{_hw} model accuracy after {_label} of conductance drift (%)"


class _Row:
    """Stand-in for the package's record classes so unpickling needs neither pandas nor pkg_resources."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("analognasbench"):
            if name in ("Architecture", "DriftMeasurement"):
                return _Row
            raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the analog-nasbench table")
        if module in ("builtins", "numpy", "numpy.core.multiarray", "numpy._core.multiarray", "copyreg"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the analog-nasbench table")


def analog_table_path() -> Path:
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or spec.origin is None:
        raise NasagentError("the embedded NB201 table needs the 'analog-nasbench' package: pip install analog-nasbench==0.1.3")
    path = Path(spec.origin).parent / "data.anb"
    if not path.exists():
        raise NasagentError(f"analog-nasbench is installed but its table {path} is missing; reinstall the package")
    return path


def analog_key_to_arch(key: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(ANALOG_OPS[key[ANALOG_POSITION[i]]] for i in range(6))


@lru_cache(maxsize=1)
def _load_analog() -> tuple[list[str], dict[str, np.ndarray]]:
    with open(analog_table_path(), "rb") as f:
        data = _SafeUnpickler(f).load()
    space = NB201Space()
    keys, cols = [], {name: [] for name in _METRICS}
    for tup, rec in data.items():
        keys.append(space.format(analog_key_to_arch(tup)))
        cols["accuracy"].append(rec.baseline_accuracy)
        for name in ("ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy"):
            cols[name].append(getattr(rec, name))
        for hw in ("baseline", "analog"):
            for sec, label in _DRIFT_TIMES.items():
                cols[f"{hw}_drift_{label}"].append(getattr(rec, f"{hw}_drift_{sec}").value)
    if len(set(keys)) != 15625:
        raise NasagentError(f"the analog-nasbench table has {len(set(keys))} distinct cells, expected 15,625")
    return keys, {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def nb201_benchmark() -> TableBenchmark:
    keys, cols = _load_analog()
    return TableBenchmark(
        name="nb201",
        space=NB201Space(),
        metrics={n: Metric(n, "max", d) for n, d in _METRICS.items()},
        default_metric="accuracy",
        keys=keys,
        columns=cols,
        notes="embedded NAS-Bench-201 CIFAR-10 table (analog-nasbench); no training times: cost 1 per sample; "
        "cells with no input-output path are valid at 10 %",
    )


def csv_benchmark(path: str | Path, arch_column: str | None = None, cost_column: str | None = None) -> TableBenchmark:
    """A user's NB201 table: one column of NB201 strings, any number of numeric metric columns.

    The architecture column is auto-detected (the column whose values all parse as NB201 strings) when not
    given. Metrics are maximised by default; a column whose name contains 'loss', 'error', 'latency',
    'time', 'params' or 'flops' is minimised.
    """
    path = Path(path)
    if not path.exists():
        raise NasagentError(f"NB201 table file {path} does not exist")
    if path.is_dir():
        raise NasagentError(f"NB201 table {path} is a folder; pass the CSV file itself")
    space = NB201Space()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets' "CSV UTF-8" starts with a BOM
            reader = csv.DictReader(f)
            rows, line_of = [], []
            for r in reader:
                if all(not (v or "").strip() for v in r.values() if isinstance(v, str)):
                    continue  # an empty row (a spreadsheet's trailing ",,,")
                rows.append(r)
                line_of.append(reader.line_num)  # the file's own line, blank lines counted
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise NasagentError(f"{path} is not a readable CSV file: {e}") from None
    if not rows:
        raise NasagentError(f"{path} has no data rows")
    if len(header) == 1 and ";" in header[0]:
        raise NasagentError(f"{path} seems to separate its columns with ';'; nasagent reads comma-separated files "
                            "(save it as CSV with commas)")
    names = [h.strip() for h in header]
    if "" in names or len(set(names)) != len(names):
        bad = "an empty column name" if "" in names else f"column {next(n for n in names if names.count(n) > 1)!r} twice"
        raise NasagentError(f"{path}: the header has {bad}; every column needs its own name")
    if arch_column is None and "arch" in header:
        arch_column = "arch"  # named so: its bad lines are reported as such, not as "no architecture column"
    if arch_column is None:
        for col in header:
            try:
                for r in rows[:50]:
                    space.parse(r[col])
            except (NasagentError, TypeError):
                continue
            arch_column = col
            break
        if arch_column is None:
            raise NasagentError(
                f"{path}: no column holds NB201 architecture strings (columns: {', '.join(header)}); "
                "name it with --arch-column"
            )
    elif arch_column not in header:
        raise NasagentError(f"{path} has no column {arch_column!r}; columns: {', '.join(header)}")
    keys: list[str] = []
    numeric: dict[str, list[float]] = {c: [] for c in header if c != arch_column}
    for lineno, r in zip(line_of, rows, strict=True):
        try:
            arch = space.parse(r[arch_column])
        except NasagentError as e:
            raise NasagentError(f"{path} line {lineno}: {e}") from None
        keys.append(space.format(arch))
        for c in list(numeric):
            text = (r.get(c) or "").strip()
            try:
                numeric[c].append(float(text) if text else math.nan)  # a blank cell is a missing value
            except ValueError:
                if any(not math.isnan(v) for v in numeric[c]):  # numbers above, then text: a typo, not a text column
                    raise NasagentError(f"{path} line {lineno}: column {c!r} holds {text!r}, not a number "
                                        "(leave a missing value blank)") from None
                del numeric[c]  # a text column (a note, an id) is not a metric
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise NasagentError(f"{path}: architecture {dup} appears more than once")
    if not numeric:
        raise NasagentError(f"{path} has no numeric metric columns besides {arch_column!r}")
    if cost_column is not None and cost_column not in numeric:
        raise NasagentError(f"{path} has no numeric column {cost_column!r} for the cost; numeric columns: {', '.join(numeric)}")

    def mode(c: str) -> str:
        return "min" if any(w in c.lower() for w in ("loss", "error", "latency", "time", "params", "flops")) else "max"

    default = next((c for c in numeric if mode(c) == "max"), next(iter(numeric)))
    if len(keys) < space.size():
        from nasagent.spaces.subset import SubsetSpace

        space = SubsetSpace(space, keys)  # a partial table: search only the cells it holds
    return TableBenchmark(
        name=f"nb201-csv:{path.name}",
        space=space,
        metrics={c: Metric(c, mode(c), f"column {c!r} of {path.name}") for c in numeric},
        default_metric=default,
        keys=keys,
        columns={c: np.asarray(v, dtype=np.float64) for c, v in numeric.items()},
        cost_metric=cost_column,
        notes=f"user table {path} ({len(keys)} cells); a partial table restricts the search to its cells "
        "(cells missing from it fail and do not count toward the budget)",
    )
