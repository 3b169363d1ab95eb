"""The one column vocabulary of the analysis commands: the options naming a table's columns, defined once.

`--n --d --c --s/--steps --run --run-by --y --metric --split --higher-is-better --d-from-flops --k` mean
the same on every command; `prepare` applies the ones a command's engine does not take itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from scalinglab.cli.render import K_OPTION
from scalinglab.errors import UserError

if TYPE_CHECKING:  # pandas is imported on use: --help stays fast
    import numpy as np
    import pandas as pd

Opt = typer.Option

# Canonical names: a table that uses them needs no column option at all.
CANONICAL = {
    "n": "n_params",
    "d": "dataset_size",
    "c": "flops",
    "s": "steps",
    "run": "run_id",
    "y": "value",
    "metric": "metric",
    "split": "split",
}

# The observations schema's analysis columns (scalinglab.observations.SCHEMA; a test keeps the two equal),
# spelled out here so that --help does not import pandas.
TABLE_COLUMNS = {
    "run_id": "the run",
    "n_params": "N",
    "dataset_size": "D",
    "samples_seen": "samples seen so far",
    "steps": "S",
    "flops": "C",
    "metric": "metric name",
    "split": "split name",
    "value": "the metric's value",
}
EPILOG = (
    "A table whose columns have the canonical names needs no column option: "
    + ", ".join(f"{name} ({what})" for name, what in TABLE_COLUMNS.items())
    + ". See docs/observations.md."
)

N = Annotated[str | None, Opt("--n", help="column of model size N; default column: n_params")]
D = Annotated[str | None, Opt("--d", help="column of data size D; default column: dataset_size")]
C = Annotated[str | None, Opt("--c", help="column of cumulative training FLOPs C; default column: flops")]
S = Annotated[str | None, Opt("--s", "--steps", help="column of optimiser steps S so far; default column: steps")]
RUN = Annotated[str | None, Opt("--run", help="column naming the run; default column: run_id")]
RUN_BY = Annotated[
    str | None,
    Opt(
        "--run-by",
        help="COL1,COL2,...: build the run id from these columns (a configuration that comes back after other "
        "rows starts a new run)",
    ),
]
Y = Annotated[str | None, Opt("--y", help="column of the metric's value; default column: value")]
METRIC = Annotated[str | None, Opt("--metric", help="keep rows whose 'metric' column is this")]
SPLIT = Annotated[str | None, Opt("--split", help="keep rows whose 'split' column is this")]
HIGHER_IS_BETTER = Annotated[bool, Opt("--higher-is-better", help="the metric improves upwards (mAP, accuracy)")]
D_FROM_FLOPS = Annotated[bool, Opt("--d-from-flops", help="derive D = C / (k N) instead of reading a D column")]
K = Annotated[float, Opt(*K_OPTION, help="k in C = k N D: FLOPs per parameter per sample (default 6)")]

RUN_BY_COLUMN = "run_id"


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
    import pandas as pd

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
    import numpy as np
    import pandas as pd

    starts = np.r_[True, values[1:] != values[:-1]]  # the first row of each contiguous block
    block_key = values[starts]
    occurrence = pd.Series(block_key).groupby(block_key).cumcount().to_numpy() + 1  # 1 for a key's first block
    labels = np.array([k if i == 1 else f"{k}#{i}" for k, i in zip(block_key, occurrence, strict=True)], dtype=object)
    return labels[np.cumsum(starts) - 1]


def derive_d(
    table: pd.DataFrame, c: str | None, n: str | None, k: float, source: str = "data"
) -> tuple[pd.DataFrame, str]:
    """--d-from-flops for engines that read a D column: D = C / (k N) in a new column; returns it and its name."""
    import numpy as np

    from scalinglab.observations import numeric_column, require_positive

    c, n = c or CANONICAL["c"], n or CANONICAL["n"]
    frame = table.assign(_row=np.arange(len(table)))
    is_csv = source.lower().endswith((".csv", ".tsv", ".txt"))
    flops = numeric_column(frame, c, "C (to derive D)", source, is_csv)
    params = numeric_column(frame, n, "N (to derive D)", source, is_csv)
    require_positive(params, frame, n, source, is_csv, "parameters")
    require_positive(flops, frame, c, source, is_csv, "FLOPs")
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
    if steps is not None and steps != CANONICAL["s"]:
        if steps not in table.columns:
            listed = ", ".join(f"'{c}'" for c in table.columns[:20])
            raise UserError(f"{source}: no column '{steps}' (needed for --steps); columns are {listed}")
        table = table.assign(**{CANONICAL["s"]: table[steps]})  # the engine reads each run's last point by 'steps'
    if names:
        table = table.assign(**{RUN_BY_COLUMN: build_run_ids(table, names, source)})
        return table, RUN_BY_COLUMN
    return table, run
