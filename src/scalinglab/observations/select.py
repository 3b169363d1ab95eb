"""What a fit needs from an observations table: `FitData` (validated positive inputs, targets, run groups),
selected once by `select_fit_data` and handed to every estimator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, check_flops_per_param_sample
from scalinglab.observations.runs import last_index, last_rows
from scalinglab.observations.schema import resolve_columns
from scalinglab.observations.validate import numeric_column, prepare_frame, require_positive, where


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

    def column(self, name: str) -> np.ndarray:
        """The values of input `name` (e.g. "n"), one per point."""
        return self.inputs[self.input_names.index(name)]

    def subset(self, mask: np.ndarray) -> FitData:
        """The points where `mask` holds (a boolean mask or indices), without the selection's notes."""
        return replace(
            self,
            inputs=self.inputs[:, mask],
            y=self.y[mask],
            groups=None if self.groups is None else self.groups[mask],
            rows=None if self.rows is None else self.rows[mask],
            warnings=[],
        )

    def final_points(self) -> np.ndarray:
        """Index of each run's last checkpoint (most samples seen) in all-checkpoint data, in point order."""
        return last_index(self.groups, self.column("seen"))


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
    derive = {"d_from_flops": d_from_flops, "flops_per_param_sample": flops_per_param_sample}
    values = {role: _input_values(frame, role, cols, source=source, is_csv=is_csv, **derive) for role in inputs}
    target = _fit_target(frame, cols["y"], higher_is_better, ceiling, source, is_csv)
    groups = frame[run_col].astype(str).to_numpy() if run_col else None
    stacked = np.stack([values[r] for r in inputs])
    data = FitData(stacked, tuple(inputs), target, groups, source, notes, rows=frame["_row"].to_numpy())
    point = pd.DataFrame({**values, "y": target} | ({"run": groups} if groups is not None else {}))
    keep = _unique_points(point, data.rows, cols["y"], on_duplicate, source, is_csv, notes, frame)
    data = replace(data.subset(keep), warnings=notes)
    _check_identifiable(data, cols, d_from_flops, n_params)
    return data


def _check_identifiable(data: FitData, cols: dict[str, str], d_from_flops: bool, n_params: int) -> None:
    """A UserError when there are fewer points than parameters, or an input takes a single value."""
    if data.n_points < n_params:
        raise UserError(f"{data.source}: {data.n_points} points, fewer than the form's {n_params} parameters")
    for role in data.input_names:
        if np.unique(data.column(role)).size < 2:
            name = cols["c"] + "/(kN)" if role == "d" and d_from_flops else cols[role]
            raise UserError(
                f"{data.source}: column '{name}' has one distinct value; the law in {role.upper()} is not identifiable"
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
    before = len(frame)
    frame = last_rows(frame, run_col, steps)
    notes.append(f"used the last point of each run ({len(frame)} of {before} rows); pass --all-points to fit every row")
    return frame


def _input_values(
    frame: pd.DataFrame,
    role: str,
    cols: dict[str, str],
    *,
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
