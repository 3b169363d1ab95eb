"""Mapping runs read from an experiment tracker onto the observations table.

Each importer reads its source into `TrackedRun`s (what the run knows about itself, and its metric
histories); `to_observations` turns them into observation rows, with one-line errors for what is missing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations import SCHEMA, TRIAL_COLUMNS, read_table

# Names tried, in order, when --n / --d are not given. Matched exactly, then ignoring case.
N_KEYS = ("n_params", "N", "n", "num_params", "params", "parameters", "model_size", "model_params")
D_KEYS = ("dataset_size", "D", "d", "data_size", "num_samples", "train_size", "tokens", "dataset_tokens")
# A metric key "eval/loss", "eval_loss" or "loss/eval" holds the metric "loss" on the split "eval".
SPLITS = ("train", "training", "eval", "evaluation", "val", "valid", "validation", "test", "dev")
RUN_COLUMNS = ("run_id", "run", "run_name", "name", "Name", "ID", "id")


@dataclass
class TrackedRun:
    """One run as a tracker holds it: `params` (params, tags, hparams, config) and metric histories."""

    name: str
    where: str  # how an error names the run, e.g. "file:///x/mlruns: experiment 'a', run 'b'"
    params: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # key -> (step, value) points

    def merge(self, other: TrackedRun) -> None:
        """Add another record of the same run (a second export file): params and points are combined."""
        for key, value in other.params.items():
            self.params.setdefault(key, value)
        for key, points in other.series.items():
            self.series.setdefault(key, []).extend(points)


def split_metric(key: str, default_split: str) -> tuple[str, str]:
    """(metric, split) from a tracker's key: 'eval/loss' and 'eval_loss' and 'loss/eval' give ('loss', 'eval')."""
    lowered = key.lower()
    for split in SPLITS:
        for sep in ("/", "_"):
            if lowered.startswith(split + sep) and len(key) > len(split) + 1:
                return key[len(split) + 1 :], key[: len(split)]
        if lowered.endswith("/" + split) and len(key) > len(split) + 1:
            return key[: -len(split) - 1], key[-len(split) :]
    return key, default_split


def parse_number(text: object) -> float | None:
    """A finite float from a param's text ('1e6', '125M', '1.5B', '7_000'), or None."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float, np.integer, np.floating)):
        value = float(text)
        return value if math.isfinite(value) else None
    word = str(text).strip().replace("_", "").replace(",", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}.get(word[-1:].lower(), 1.0) if word else 1.0
    if scale != 1.0:
        word = word[:-1]
    try:
        value = float(word) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_runs_table(path: str | Path) -> dict[str, dict[str, str]]:
    """A table of per-run values (a W&B runs export, a hand-made CSV): run name -> {column: value}."""
    table = read_table(path) if not str(path).lower().endswith((".json", ".jsonl")) else read_json_records(path)
    column = next((c for c in RUN_COLUMNS if c in table.columns), None)
    if column is None:
        raise UserError(f"{path}: no run column; name one of {', '.join(RUN_COLUMNS)}")
    out: dict[str, dict[str, str]] = {}
    for _, row in table.iterrows():
        out[str(row[column])] = {str(k): str(v) for k, v in row.items() if k != column and not _missing(v)}
    return out


def read_json_records(path: str | Path) -> pd.DataFrame:
    """A JSON array of objects, or JSON lines (one object a line), as a table."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace").lstrip()
    try:
        if text.startswith("["):
            return pd.read_json(path, orient="records", precise_float=True)
        return pd.read_json(path, lines=True, precise_float=True)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot be read as JSON records: {first}") from None


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def merge_runs(runs: Iterable[TrackedRun]) -> list[TrackedRun]:
    """One record per run name, in first-seen order (several export files may each hold part of a run)."""
    merged: dict[str, TrackedRun] = {}
    for run in runs:
        if run.name in merged:
            merged[run.name].merge(run)
        else:
            merged[run.name] = run
    return list(merged.values())


def _lookup(run: TrackedRun, key: str, exact_only: bool) -> float | None | str:
    """A run's number for `key`: a param (or tag, hparam, config) or the last point of a metric history.

    Returns None when the run has no such key, the text when it is there but not a number.
    """
    candidates = [key] if exact_only else [key, *[k for k in (*run.params, *run.series) if k.lower() == key.lower()]]
    for name in candidates:
        if name in run.params:
            value = parse_number(run.params[name])
            return value if value is not None else run.params[name]
        if run.series.get(name):
            return float(sorted(run.series[name])[-1][1])
    return None


def _size(run: TrackedRun, given: str | None, defaults: Sequence[str], role: str, option: str) -> tuple[float, str]:
    """N or D of a run: the key given (or a number), else the first default key the run has."""
    if given is not None:
        value = _lookup(run, given, exact_only=True)
        if value is None:
            constant = parse_number(given)
            if constant is not None:
                return constant, given
            known = ", ".join(f"'{k}'" for k in sorted(run.params)[:20]) or "none"
            raise UserError(f"{run.where}: no param, tag or metric '{given}' for {role} ({option}); params are {known}")
        keys = [given]
    else:
        keys = [k for k in defaults if _lookup(run, k, exact_only=False) is not None]
        if not keys:
            known = ", ".join(f"'{k}'" for k in sorted(run.params)[:20]) or "none"
            raise UserError(
                f"{run.where}: no param, tag or metric for {role} (tried {', '.join(defaults)}); "
                f"name it with {option}; params are {known}"
            )
        value = _lookup(run, keys[0], exact_only=False)
    if isinstance(value, str) or value is None or value <= 0:
        raise UserError(f"{run.where}: {role} '{keys[0]}' = '{value}' is not a number > 0 ({option})")
    return value, keys[0]


@dataclass(frozen=True)
class _Keys:
    """Which keys `to_observations` reads from each run (None: the defaults) and the split of unsplit keys."""

    n: str | None
    d: str | None
    metrics: Sequence[str] | None
    samples_seen: str | None
    flops: str | None
    split: str


@dataclass(frozen=True)
class _RunRows:
    """One run's observation rows, the metric keys it logs and how many non-finite points were left out."""

    frames: list[pd.DataFrame]
    seen_keys: set[str]
    skipped: int


def to_observations(
    runs: Sequence[TrackedRun],
    *,
    source: str,
    n: str | None = None,
    d: str | None = None,
    metrics: Sequence[str] | None = None,
    samples_seen: str | None = None,
    flops: str | None = None,
    split: str = "eval",
    runs_table: dict[str, dict[str, str]] | None = None,
) -> pd.DataFrame:
    """The observations table of `runs`: one row per (run, metric, split, step) point.

    N and D come from `n` / `d` (a param, tag or metric key of each run, or a number for every run), else the
    first of `N_KEYS` / `D_KEYS` a run has. Every other history is a metric, unless `metrics` names the ones
    wanted (by key, or by metric name after the split is taken off). Histories named by `samples_seen` and
    `flops` (by default those named 'samples_seen' and 'flops') fill those columns at the same steps.
    `runs_table` adds values to each run's params by name.
    """
    runs = merge_runs(runs)
    if not runs:
        raise UserError(f"{source}: no runs found")
    keys = _Keys(n, d, metrics, samples_seen, flops, split)
    rows: list[pd.DataFrame] = []
    seen_keys: set[str] = set()
    skipped_nonfinite = 0
    for run in runs:
        for key, value in (runs_table or {}).get(run.name, {}).items():
            run.params.setdefault(key, value)
        found = _run_rows(run, keys)
        rows += found.frames
        seen_keys |= found.seen_keys
        skipped_nonfinite += found.skipped
    if metrics:
        _check_metrics_logged(metrics, seen_keys, split, source)
    if not rows:
        raise UserError(f"{source}: the runs log no metric histories")
    if skipped_nonfinite:
        warnings.warn(f"{source}: left out {skipped_nonfinite} point(s) that are not finite numbers", stacklevel=2)
    return _assembled(rows)


def _side_columns(run: TrackedRun, keys: _Keys) -> dict[str, str | None]:
    """The histories that fill samples_seen and flops (None: none); a UserError for one named but not logged."""
    # Histories named like the columns fill them unless told otherwise (as the study's own logging writes).
    columns = {
        "samples_seen": keys.samples_seen or ("samples_seen" if "samples_seen" in run.series else None),
        "flops": keys.flops or ("flops" if "flops" in run.series else None),
    }
    for column, key in columns.items():
        if key is not None and key not in run.series:
            raise UserError(f"{run.where}: no metric history '{key}' for {column} (--{column.replace('_', '-')})")
    return columns


def _run_rows(run: TrackedRun, keys: _Keys) -> _RunRows:
    """One run's metric histories as observation rows, with its N, D and the side columns at the same steps."""
    n_value, n_key = _size(run, keys.n, N_KEYS, "N", "--n")
    d_value, d_key = _size(run, keys.d, D_KEYS, "D", "--d")
    columns = _side_columns(run, keys)
    per_step = {column: _by_step(run.series[key]) for column, key in columns.items() if key is not None}
    not_metrics = {n_key, d_key, *(k for k in columns.values() if k)}
    frames: list[pd.DataFrame] = []
    seen_keys: set[str] = set()
    skipped = 0
    for key, points in run.series.items():
        if key in not_metrics:
            continue
        seen_keys.add(key)
        metric, split_name = split_metric(key, keys.split)
        if keys.metrics and key not in keys.metrics and metric not in keys.metrics:
            continue
        steps, values = (np.array(v, dtype=float) for v in zip(*sorted(points), strict=True))
        finite = np.isfinite(values) & np.isfinite(steps)
        skipped += int((~finite).sum())
        steps, values = steps[finite], values[finite]
        part = pd.DataFrame(
            {
                "run_id": run.name,
                "n_params": n_value,
                "dataset_size": d_value,
                "samples_seen": [per_step.get("samples_seen", {}).get(s, np.nan) for s in steps],
                "steps": steps,
                "flops": [per_step.get("flops", {}).get(s, np.nan) for s in steps],
                "metric": metric,
                "split": split_name,
                "value": values,
            }
        )
        frames.append(part.assign(**_trial_params(run)))
    return _RunRows(frames, seen_keys, skipped)


def _trial_params(run: TrackedRun) -> dict[str, float]:
    """The run's hyperparameters a sweep's trials vary (lr, batch_size, ...: params named so, any case), as numbers."""
    by_lower = {key.lower(): value for key, value in run.params.items()}
    out = {}
    for name in TRIAL_COLUMNS:
        value = parse_number(by_lower[name]) if name in by_lower else None
        if isinstance(value, float) and math.isfinite(value):
            out[name] = value
    return out


def _check_metrics_logged(metrics: Sequence[str], seen_keys: set[str], split: str, source: str) -> None:
    """A UserError naming the first of `metrics` that no run logs (by key or by metric name)."""
    found = {split_metric(k, split)[0] for k in seen_keys} | seen_keys
    absent = [m for m in metrics if m not in found]
    if absent:
        listed = ", ".join(sorted(seen_keys)[:20]) or "none"
        raise UserError(f"{source}: no run logs the metric '{absent[0]}'; metrics are {listed}")


def _assembled(rows: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs' rows as one table in the schema; a step logged twice (a resumed run) keeps the value written last."""
    frame = pd.concat(rows, ignore_index=True)
    frame = frame.drop_duplicates(["run_id", "metric", "split", "steps"], keep="last")
    frame = frame.sort_values(["run_id", "metric", "split", "steps"], kind="stable").reset_index(drop=True)
    return _typed(frame)


def _by_step(points: list[tuple[float, float]]) -> dict[float, float]:
    return {float(step): float(value) for step, value in points}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the schema's columns in order and dtypes."""
    out = pd.DataFrame(index=frame.index)
    for name, (kind, _) in SCHEMA.items():
        out[name] = frame[name].astype("string" if kind == "string" else "float64")
    for name in TRIAL_COLUMNS:  # a sweep's hyperparameters, where the runs carry them
        if name in frame:
            out[name] = frame[name].astype("float64")
    return out
