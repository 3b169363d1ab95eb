"""Turning a user's table into the observations table the analyses read: run ids built from columns,
columns named by role renamed to the schema's names, D derived from FLOPs, one metric's rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations.schema import ROLES
from scalinglab.observations.validate import is_csv, numeric_column, require_positive

RUN_BY_COLUMN = ROLES["run"]  # where --run-by puts the run ids it builds


def parse_run_by(text: str | None) -> list[str]:
    """'a,b' -> ['a', 'b']; an empty name is a UserError."""
    if text is None:
        return []
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise UserError(f"--run-by '{text}': give column names separated by commas")
    return names


def build_run_ids(table: pd.DataFrame, columns: Sequence[str], source: str = "data") -> pd.Series:
    """A run id per row from the values of `columns`, e.g. 'lr=0.001,width=256'.

    Rows with the same values form one run while they are contiguous in the table; when the same
    configuration comes back after other rows (the sweep ran it twice), that block is a new run,
    numbered '#2', '#3', ... in table order.
    """
    missing = [c for c in columns if c not in table.columns]
    if missing:
        listed = ", ".join(f"'{c}'" for c in table.columns[:20])
        raise UserError(f"{source}: no column '{missing[0]}' (needed for --run-by); columns are {listed}")
    if len(table) == 0:
        return pd.Series([], dtype="string", index=table.index)
    parts = [table[c].astype("string").fillna("").tolist() for c in columns]
    if len(columns) == 1:
        keys = parts[0]
    else:
        keys = [",".join(f"{c}={v}" for c, v in zip(columns, row, strict=True)) for row in zip(*parts, strict=True)]
    keys = pd.Series(keys, index=table.index, dtype=object)
    # Blocks are found within each metric and split: a long table lists one metric's rows after another's.
    by = [c for c in ("metric", "split") if c in table.columns and c not in columns]
    out = pd.Series("", index=table.index, dtype=object)
    groups = keys.groupby([table[c].astype("string").fillna("") for c in by], sort=False) if by else [("", keys)]
    for _, group in groups:
        out[group.index] = _block_labels(group.to_numpy())
    return out.astype("string")


def _block_labels(values: np.ndarray) -> np.ndarray:
    """Each contiguous block keeps its key; a key's second and later blocks get '#2', '#3', ..."""
    starts = np.r_[True, values[1:] != values[:-1]]  # the first row of each contiguous block
    block_key = values[starts]
    occurrence = pd.Series(block_key).groupby(block_key).cumcount().to_numpy() + 1  # 1 for a key's first block
    labels = np.array([k if i == 1 else f"{k}#{i}" for k, i in zip(block_key, occurrence, strict=True)], dtype=object)
    return labels[np.cumsum(starts) - 1]


def derive_d(
    table: pd.DataFrame, c: str | None, n: str | None, k: float, source: str = "data"
) -> tuple[pd.DataFrame, str]:
    """--d-from-flops for engines that read a D column: D = C / (k N) in a new column; returns it and its name."""
    c, n = c or ROLES["c"], n or ROLES["n"]
    frame = table.assign(_row=np.arange(len(table)))
    text = is_csv(source)
    flops = numeric_column(frame, c, "C (to derive D)", source, text)
    params = numeric_column(frame, n, "N (to derive D)", source, text)
    require_positive(params, frame, n, source, text, "parameters")
    require_positive(flops, frame, c, source, text, "FLOPs")
    name = f"{c}/(kN)"
    return table.assign(**{name: flops / (k * params)}), name


def prepare(
    table: pd.DataFrame,
    *,
    source: str = "data",
    run_by: str | None = None,
    steps: str | None = None,
    run: str | None = None,
) -> tuple[pd.DataFrame, str | None]:
    """The table as the analyses read it: a run id built with --run-by, steps read from --s/--steps.

    Returns the table and the run column to pass on (the built one, or `run` unchanged).
    """
    names = parse_run_by(run_by)
    if names and run is not None:
        raise UserError("give --run or --run-by, not both")
    if steps is not None and steps != ROLES["s"]:
        if steps not in table.columns:
            listed = ", ".join(f"'{c}'" for c in table.columns[:20])
            raise UserError(f"{source}: no column '{steps}' (needed for --steps); columns are {listed}")
        table = table.assign(**{ROLES["s"]: table[steps]})  # each run's last point is read by 'steps'
    if names:
        table = table.assign(**{RUN_BY_COLUMN: build_run_ids(table, names, source)})
        return table, RUN_BY_COLUMN
    return table, run


def rename_columns(obs: pd.DataFrame, columns: dict[str, str | None] | None, source: str) -> pd.DataFrame:
    """The table with the columns named by role (n, d, y, c, run, ...) renamed to the schema's names."""
    mapping = {}
    for role, column in (columns or {}).items():
        if column is None or role not in ROLES or column == ROLES[role]:
            continue
        if column not in obs.columns:
            raise UserError(f"{source}: no column '{column}' (given for --{role})")
        mapping[column] = ROLES[role]
    return obs.drop(columns=[c for c in mapping.values() if c in obs.columns]).rename(columns=mapping)


def metric_rows(obs: pd.DataFrame, metric: str, split: str | None, source: str) -> pd.DataFrame:
    """The rows of one metric (and split, when given) of a renamed table; a missing one is a UserError."""
    frame = obs
    if "metric" in frame:
        if metric not in set(frame["metric"]):
            raise UserError(
                f"{source}: column 'metric' has no '{metric}' rows; it has {', '.join(sorted(set(frame['metric'])))}"
            )
        frame = frame[frame["metric"] == metric]
    if split is not None and "split" in frame:
        if split not in set(frame["split"]):
            raise UserError(f"{source}: column 'split' has no '{split}' rows")
        frame = frame[frame["split"] == split]
    if frame.empty:
        raise UserError(f"{source}: no rows for metric '{metric}'")
    if "value" not in frame:
        raise UserError(f"{source}: no column 'value' (the metric; name another with --y)")
    return frame
