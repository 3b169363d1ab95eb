"""The observations table, the project's one data model: reading it and selecting what a fit needs.

One row per measurement. Runs write it, every analysis reads it; a user's own CSV or parquet file
works as it is through a column mapping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, check_flops_per_param_sample


class Column(NamedTuple):
    dtype: str  # string, float, int or bool
    meaning: str
    analysis: bool  # read by the analyses (and required of a user's own table); the rest a study run adds


# The one definition of the observation columns, in table order. The study store's table and the rows
# the training loop writes derive from it; `SCHEMA` is the subset every analysis reads.
COLUMNS: dict[str, Column] = {
    "run_id": Column("string", "identifies one training run; several rows per run are points along its curve", True),
    "n_params": Column("float", "model capacity N: number of trainable parameters", True),
    "n_params_nonembed": Column("float", "N without the parameters of embedding tables", False),
    "dataset_size": Column("float", "training set size D: number of distinct training samples", True),
    "samples_seen": Column("float", "samples processed so far (D x epochs at the end of a run)", True),
    "steps": Column("float", "optimiser steps S so far", True),
    "flops": Column("float", "cumulative training FLOPs C so far", True),
    "metric": Column("string", "metric name, e.g. loss, minADE, mAP", True),
    "split": Column("string", "train or eval (or any split name)", True),
    "value": Column("float", "the metric's value", True),
    "higher_is_better": Column("bool", "whether a larger value of the metric is better", False),
    "wall_time": Column("float", "seconds of training so far, across resumes", False),
    "model_scale": Column("float", "the study's model scale multiplier of the run", False),
    "data_scale": Column("float", "the study's data scale multiplier of the run", False),
    "seed": Column("int", "the run's training seed", False),
}

# column -> (dtype, meaning) of the analysis columns. Any other column is kept and ignored by analyses.
SCHEMA: dict[str, tuple[str, str]] = {name: (c.dtype, c.meaning) for name, c in COLUMNS.items() if c.analysis}

_PANDAS_DTYPES = {"string": "string", "float": "float64", "int": "int64", "bool": "bool"}


def observation_row(**values: object) -> dict[str, object]:
    """One observation as a dict in column order; a missing or unknown column is a bug and raises."""
    if values.keys() != COLUMNS.keys():
        missing, extra = sorted(COLUMNS.keys() - values.keys()), sorted(values.keys() - COLUMNS.keys())
        raise KeyError(f"observation row: missing columns {missing}, unknown columns {extra}")
    return {name: values[name] for name in COLUMNS}


INPUT_DEFAULTS = {
    "n": "n_params",
    "d": "dataset_size",
    "seen": "samples_seen",  # samples processed so far: the steps-aware form's third input
    "x": "flops",
    "c": "flops",
    "y": "value",
    "run": "run_id",
}


def empty_observations() -> pd.DataFrame:
    """An observations table with the schema's columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=_PANDAS_DTYPES[kind]) for name, (kind, _) in SCHEMA.items()})


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or parquet file as it is; a file that cannot be read is a UserError naming it."""
    path = Path(path)
    if path.is_dir():
        hint = (
            "a study folder: `scalinglab report` reads it, `scalinglab study export` writes its table"
            if (path / "study.sqlite").is_file()
            else "a folder, not a table file"
        )
        raise UserError(f"{path}: {hint}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot be read as {suffix[1:]}: {first}") from None
    raise UserError(f"{path}: unknown file type '{suffix}'; use .csv, .tsv or .parquet")


def write_table(frame: pd.DataFrame, output: str | Path) -> None:
    """Write a table as CSV or parquet (by suffix), atomically; a file that cannot be written is a UserError."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(f"{output}: unknown file type '{suffix}'; use .csv or .parquet")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror
        raise UserError(f"{output}: cannot create the folder {output.parent} ({why})") from None
    tmp = output.with_name(output.name + ".tmp")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"{output}: cannot be written ({exc.strerror or exc})") from None


@dataclass
class FitData:
    """What a fit needs, validated: positive inputs (k, n), positive targets, optional run groups."""

    inputs: np.ndarray
    input_names: tuple[str, ...]
    y: np.ndarray
    groups: np.ndarray | None
    source: str
    warnings: list[str] = field(default_factory=list)
    rows: np.ndarray | None = None  # each point's row in the table it was selected from

    @property
    def n_points(self) -> int:
        return int(self.y.size)


def where(source: str, row: int, is_csv: bool) -> str:
    """How an error names a row: data rows count from 1; CSV files also give the file line."""
    return f"{source}: row {row + 1}" + (f" (line {row + 2})" if is_csv else "")


def numeric_column(frame: pd.DataFrame, column: str, role: str, source: str, is_csv: bool) -> np.ndarray:
    """The column as finite floats; a missing column or a bad cell is a UserError naming it."""
    if column not in frame.columns:
        listed = ", ".join(f"'{c}'" for c in frame.columns[:20] if c != "_row")
        raise UserError(f"{source}: no column '{column}' (needed for {role}); columns are {listed}")
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        row = int(frame["_row"].iloc[i])
        text = raw.iloc[i]
        what = "is empty" if pd.isna(text) else f"'{text}' is not a finite number"
        more = f" ({bad.size} such rows)" if bad.size > 1 else ""
        raise UserError(f"{where(source, row, is_csv)}, column '{column}': {what}{more}")
    return values


def require_positive(values: np.ndarray, frame: pd.DataFrame, column: str, source: str, is_csv: bool, why: str) -> None:
    """A UserError naming the first row where `values` is not > 0."""
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        row = int(frame["_row"].iloc[int(bad[0])])
        raise UserError(f"{where(source, row, is_csv)}, column '{column}': {values[bad[0]]:g} must be > 0 ({why})")


def choose_rows(frame: pd.DataFrame, column: str, wanted: str | None, source: str, option: str) -> pd.DataFrame:
    """Rows whose `column` equals `wanted`; when not given, the column must hold a single value."""
    if column not in frame.columns:
        if wanted is not None:
            raise UserError(f"{source}: {option} '{wanted}' given, but there is no column '{column}'")
        return frame
    present = list(pd.unique(frame[column].astype(str)))
    if wanted is None:
        if len(present) > 1:
            raise UserError(f"{source}: column '{column}' holds {', '.join(present)}; choose one with {option}")
        return frame
    if wanted not in present:
        raise UserError(f"{source}: {option} '{wanted}' not found; column '{column}' holds {', '.join(present)}")
    return frame[frame[column].astype(str) == wanted]


def resolve_columns(columns: dict[str, str | None] | None) -> dict[str, str]:
    """The role -> column mapping, with the schema's names for roles not given."""
    return {**INPUT_DEFAULTS, **{k: v for k, v in (columns or {}).items() if v}}


def prepare_frame(
    table: pd.DataFrame, source: str, metric: str | None = None, split: str | None = None
) -> tuple[pd.DataFrame, bool]:
    """The rows of one metric and split, each remembering its original row number in `_row`."""
    is_csv = source.lower().endswith((".csv", ".tsv", ".txt"))
    frame = table.reset_index(drop=True).assign(_row=np.arange(len(table)))
    frame = choose_rows(frame, "metric", metric, source, "--metric")
    frame = choose_rows(frame, "split", split, source, "--split")
    if frame.empty:
        raise UserError(f"{source}: no rows to analyse")
    return frame, is_csv


def select_fit_data(
    table: pd.DataFrame,
    inputs: Sequence[str],
    columns: dict[str, str] | None = None,
    *,
    source: str = "data",
    metric: str | None = None,
    split: str | None = None,
    final_only: bool = True,
    d_from_flops: bool = False,
    flops_per_param_sample: float = 6.0,
    higher_is_better: bool = False,
    ceiling: float = 1.0,
    n_params: int = 1,
    on_duplicate: str = "drop",
) -> FitData:
    """Validate and select the points of `table` that a fit on `inputs` (e.g. ("n", "d")) needs.

    `columns` maps roles (n, d, x, c, y, run) to column names; missing roles take the schema's
    names. With `d_from_flops`, D is derived as C / (k N), k = `flops_per_param_sample`. For a
    higher-is-better metric the target is the error `ceiling - metric`. Duplicate points are dropped,
    kept or an error (`on_duplicate`); with `final_only`, "error" also checks the rows before each
    run's last point is taken. Every problem is a UserError naming file, row and column.
    """
    if on_duplicate not in ("drop", "keep", "error"):
        raise UserError(f"on_duplicate must be drop, keep or error, not '{on_duplicate}'")
    if d_from_flops:
        check_flops_per_param_sample(flops_per_param_sample)
    cols = resolve_columns(columns)
    frame, is_csv = prepare_frame(table, source, metric, split)
    run_col = cols["run"] if cols["run"] in frame.columns else None
    notes: list[str] = []
    if final_only and run_col and "steps" in frame.columns and frame[run_col].duplicated().any():
        if on_duplicate == "error":
            raw = [run_col, "steps", cols["y"], *_input_columns(inputs, cols, d_from_flops)]
            _refuse_repeated_rows(frame, [c for c in raw if c in frame.columns], source, is_csv)
        frame = _last_point_of_each_run(frame, run_col, source, is_csv, notes)
    if frame.empty:
        raise UserError(f"{source}: no rows to fit")

    values = {
        role: _input_values(frame, role, cols, d_from_flops, flops_per_param_sample, source, is_csv) for role in inputs
    }
    target = _fit_target(frame, cols["y"], higher_is_better, ceiling, source, is_csv)
    groups = frame[run_col].astype(str).to_numpy() if run_col else None
    rows = frame["_row"].to_numpy()
    point = pd.DataFrame({**values, "y": target} | ({"run": groups} if groups is not None else {}))
    keep = _unique_points(point, rows, cols["y"], on_duplicate, source, is_csv, notes, frame)
    values = {k: v[keep] for k, v in values.items()}
    target, rows = target[keep], rows[keep]
    groups = groups[keep] if groups is not None else None

    if target.size < n_params:
        raise UserError(f"{source}: {target.size} points, fewer than the form's {n_params} parameters")
    for role in inputs:
        if np.unique(values[role]).size < 2:
            name = cols["c"] + "/(kN)" if role == "d" and d_from_flops else cols[role]
            raise UserError(
                f"{source}: column '{name}' has one distinct value; the law in {role.upper()} is not identifiable"
            )
    return FitData(
        inputs=np.stack([values[r] for r in inputs]),
        input_names=tuple(inputs),
        y=target,
        groups=groups,
        source=source,
        warnings=notes,
        rows=rows,
    )


def _input_columns(inputs: Sequence[str], cols: dict[str, str], d_from_flops: bool) -> list[str]:
    """The table columns the inputs are read from (C and N for a D derived from FLOPs)."""
    out: list[str] = []
    for role in inputs:
        out += [cols["c"], cols["n"]] if role == "d" and d_from_flops else [cols[role]]
    return out


def _refuse_repeated_rows(frame: pd.DataFrame, key: list[str], source: str, is_csv: bool) -> None:
    """A UserError naming the first row that repeats an earlier one in every `key` column."""
    dup = frame.duplicated(subset=key).to_numpy()
    if dup.any():
        first = int(frame["_row"].iloc[int(np.flatnonzero(dup)[0])])
        listed = ", ".join(f"'{c}'" for c in key)
        raise UserError(f"{where(source, first, is_csv)}: {int(dup.sum())} duplicate row(s) (same {listed})")


def _last_point_of_each_run(
    frame: pd.DataFrame, run_col: str, source: str, is_csv: bool, notes: list[str]
) -> pd.DataFrame:
    """Each run's row with the most steps (the last in file order on a tie), in the table's order."""
    steps = numeric_column(frame, "steps", "the last point of each run", source, is_csv)
    frame = frame.assign(_steps=steps).sort_values([run_col, "_steps"], kind="stable")
    before = len(frame)
    frame = frame.groupby(run_col, sort=False).tail(1).sort_values("_row")
    notes.append(f"used the last point of each run ({len(frame)} of {before} rows); pass --all-points to fit every row")
    return frame


def _input_values(
    frame: pd.DataFrame,
    role: str,
    cols: dict[str, str],
    d_from_flops: bool,
    flops_per_param_sample: float,
    source: str,
    is_csv: bool,
) -> np.ndarray:
    """One input's values, validated positive; D = C / (k N) when derived from FLOPs."""
    if role == "d" and d_from_flops:
        flops = numeric_column(frame, cols["c"], "C (to derive D)", source, is_csv)
        n_val = numeric_column(frame, cols["n"], "N (to derive D)", source, is_csv)
        require_positive(n_val, frame, cols["n"], source, is_csv, "parameters")
        require_positive(flops, frame, cols["c"], source, is_csv, "FLOPs")
        return flops / (flops_per_param_sample * n_val)
    values = numeric_column(frame, cols[role], f"--{role}", source, is_csv)
    require_positive(values, frame, cols[role], source, is_csv, "a scaling variable")
    return values


def _fit_target(
    frame: pd.DataFrame, y_col: str, higher_is_better: bool, ceiling: float, source: str, is_csv: bool
) -> np.ndarray:
    """What the law is fitted to: the metric, or `ceiling - metric` when higher is better; it must be > 0."""
    metric_values = numeric_column(frame, y_col, "--y", source, is_csv)
    target = ceiling - metric_values if higher_is_better else metric_values
    bad = np.flatnonzero(target <= 0)
    if bad.size:
        row = int(frame["_row"].iloc[int(bad[0])])
        why = (
            f"must be below the ceiling {ceiling:g}"
            if higher_is_better
            else "must be > 0: the law is fitted on log(metric)"
        )
        raise UserError(f"{where(source, row, is_csv)}, column '{y_col}': {metric_values[bad[0]]:g} {why}")
    return target


def _unique_points(
    points: pd.DataFrame,
    rows: np.ndarray,
    y_col: str,
    on_duplicate: str,
    source: str,
    is_csv: bool,
    notes: list[str],
    frame: pd.DataFrame | None = None,
) -> np.ndarray:
    """Which points to keep: duplicates (same inputs, target and run) are dropped, kept or an error.

    The warning tells exact copies of a row apart from rows that repeat a point but differ in columns
    the fit does not read (another learning rate, a seed): those are separate measurements.
    """
    dup = points.duplicated().to_numpy()
    count = int(dup.sum())
    if count == 0 or on_duplicate == "keep":
        if count:
            notes.append(f"kept {count} duplicate row(s) (same inputs and '{y_col}'), each counted as a point")
        return np.ones(dup.size, dtype=bool)
    first = int(rows[np.flatnonzero(dup)[0]])
    if on_duplicate == "error":
        raise UserError(f"{where(source, first, is_csv)}: {count} duplicate row(s) (same inputs and {y_col})")
    exact, differing = _exact_copies(points, frame, dup) if frame is not None else (count, [])
    if exact == count:
        notes.append(
            f"dropped {count} duplicate row(s) (exact copies of an earlier row, first at row {first + 1}); "
            "kept the first of each"
        )
    else:
        listed = ", ".join(f"'{c}'" for c in differing[:5]) + (", ..." if len(differing) > 5 else "")
        notes.append(
            f"dropped {count} duplicate row(s) (same inputs, '{y_col}' and run as an earlier row, first at row "
            f"{first + 1}): {exact} exact copies, {count - exact} differing only in columns the fit does not read "
            f"({listed}); kept the first of each"
        )
    return ~dup


def _exact_copies(points: pd.DataFrame, frame: pd.DataFrame, dup: np.ndarray) -> tuple[int, list[str]]:
    """How many duplicate points are exact copies of a table row, and the columns the others differ in."""
    full = frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")]).reset_index(drop=True)
    exact = int((full.duplicated().to_numpy() & dup).sum())
    key = pd.util.hash_pandas_object(points.reset_index(drop=True), index=False)
    varying = full.groupby(key.to_numpy()).nunique(dropna=False).max()
    return exact, [str(c) for c in full.columns if varying.get(c, 1) > 1]
