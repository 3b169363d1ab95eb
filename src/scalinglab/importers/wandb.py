"""Weights & Biases run-history exports (CSV, JSON, JSON lines) as observations.

Two layouts: a history table (a step column, metric columns, a run column or one run per file), and the
chart export ('Step', '<run> - <metric>' columns). N and D come from columns or from a runs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.importers.common import RUN_COLUMNS, TrackedRun, read_json_records, to_observations
from scalinglab.observations import read_table

STEP_COLUMNS = ("_step", "Step", "step", "steps", "global_step", "trainer/global_step")
# W&B's bookkeeping columns: never metrics.
SKIP_COLUMNS = ("_runtime", "_timestamp", "_wandb", "Wall time", "Relative Time (Process)")
CHART_SUFFIXES = ("__MIN", "__MAX")


def read_export(path: str | Path) -> pd.DataFrame:
    """An export file as a table, by suffix: .csv / .tsv / .parquet, or .json / .jsonl records."""
    if str(path).lower().endswith((".json", ".jsonl")):
        return read_json_records(path)
    return read_table(path)


def _chart_runs(table: pd.DataFrame, path: Path, step: str) -> list[TrackedRun]:
    """The chart export: column '<run> - <metric>' holds the run's metric at each 'Step'."""
    runs: dict[str, TrackedRun] = {}
    steps = pd.to_numeric(table[step], errors="coerce").to_numpy(dtype=float)
    for column in table.columns:
        if " - " not in column or column.endswith(CHART_SUFFIXES):
            continue
        name, key = column.rsplit(" - ", 1)
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        keep = ~np.isnan(values)
        run = runs.setdefault(name, TrackedRun(name, f"{path}: run '{name}'"))
        run.series[key] = list(zip(steps[keep].tolist(), values[keep].tolist(), strict=True))
    return list(runs.values())


def _history_runs(table: pd.DataFrame, path: Path, step: str, run_column: str | None) -> list[TrackedRun]:
    """The history table: one row per logged step, a column per metric (and config columns)."""
    if run_column is not None and run_column not in table.columns:
        listed = ", ".join(f"'{c}'" for c in table.columns[:20])
        raise UserError(f"{path}: no run column '{run_column}' (--run-column); columns are {listed}")
    column = run_column or next((c for c in RUN_COLUMNS if c in table.columns), None)
    groups = table.groupby(table[column].astype(str), sort=False) if column else [(path.stem, table)]
    runs = []
    for name, rows in groups:
        rows = rows[pd.to_numeric(rows[step], errors="coerce").notna()]
        steps = pd.to_numeric(rows[step]).to_numpy(dtype=float)
        run = TrackedRun(str(name), f"{path}: run '{name}'")
        for col in rows.columns:
            if col in (step, column) or col in SKIP_COLUMNS:
                continue
            present = rows[col].dropna()
            if not present.empty:
                run.params[str(col)] = str(present.iloc[-1])  # a config column repeated on every row
            values = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float)
            keep = ~np.isnan(values)
            if keep.any() and present.size == keep.sum():  # numbers only: a history
                run.series[str(col)] = list(zip(steps[keep].tolist(), values[keep].tolist(), strict=True))
        runs.append(run)
    return runs


def read_wandb_runs(
    paths: Sequence[str | Path], run_column: str | None = None, step_column: str | None = None
) -> list[TrackedRun]:
    """The runs of W&B export files; a run spread over several files (one chart each) is joined by name."""
    runs: list[TrackedRun] = []
    for path in map(Path, paths):
        table = read_export(path)
        if step_column is not None and step_column not in table.columns:
            listed = ", ".join(f"'{c}'" for c in table.columns[:20])
            raise UserError(f"{path}: no step column '{step_column}' (--step-column); columns are {listed}")
        step = step_column or next((c for c in STEP_COLUMNS if c in table.columns), None)
        if step is None:
            raise UserError(f"{path}: no step column (tried {', '.join(STEP_COLUMNS)}); name it with --step-column")
        chart = run_column is None and any(" - " in str(c) for c in table.columns)
        runs += _chart_runs(table, path, step) if chart else _history_runs(table, path, step, run_column)
    return runs


def import_wandb(
    paths: Sequence[str | Path] | str | Path,
    *,
    run_column: str | None = None,
    step_column: str | None = None,
    n: str | None = None,
    d: str | None = None,
    metrics: Sequence[str] | None = None,
    samples_seen: str | None = None,
    flops: str | None = None,
    split: str = "eval",
    runs_table: dict[str, dict[str, str]] | None = None,
) -> pd.DataFrame:
    """The observations table of W&B history exports; N and D from their columns or from `runs_table`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return to_observations(
        read_wandb_runs(paths, run_column, step_column),
        source=", ".join(map(str, paths)),
        n=n,
        d=d,
        metrics=metrics,
        samples_seen=samples_seen,
        flops=flops,
        split=split,
        runs_table=runs_table,
    )
