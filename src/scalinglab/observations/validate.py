"""Reading one column or a choice of rows from a table, each problem a UserError naming file, row and column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.errors import UserError


def is_csv(source: str) -> bool:
    """Whether errors about `source` also give the file line (text tables have one line per row)."""
    return source.lower().endswith((".csv", ".tsv", ".txt"))


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


def prepare_frame(
    table: pd.DataFrame, source: str, metric: str | None = None, split: str | None = None
) -> tuple[pd.DataFrame, bool]:
    """The rows of one metric and split, each remembering its original row number in `_row`."""
    frame = table.reset_index(drop=True).assign(_row=np.arange(len(table)))
    frame = choose_rows(frame, "metric", metric, source, "--metric")
    frame = choose_rows(frame, "split", split, source, "--split")
    if frame.empty:
        raise UserError(f"{source}: no rows to analyse")
    return frame, is_csv(source)
