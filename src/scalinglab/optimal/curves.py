"""Training curves from the observations table: every point of every run with N, C, S, D and its score.

The score is the metric when lower is better and its negative when higher is better, so the
analyses always minimise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations import numeric_column, prepare_frame, require_positive, resolve_columns


@dataclass
class Curves:
    run: np.ndarray  # run id per point
    n: np.ndarray
    c: np.ndarray
    s: np.ndarray | None  # steps, when the table has them
    d: np.ndarray | None  # samples seen, when the table has them
    value: np.ndarray  # the metric in its own units
    higher_is_better: bool
    source: str
    interpolated: np.ndarray | None = None  # points read between measured ones (optimal.cell_ends), when any

    @property
    def score(self) -> np.ndarray:
        return -self.value if self.higher_is_better else self.value

    @property
    def runs(self) -> np.ndarray:
        return np.unique(self.run)

    def subset(self, keep_runs: np.ndarray) -> Curves:
        mask = np.isin(self.run, keep_runs)

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[mask]

        return Curves(
            self.run[mask],
            self.n[mask],
            self.c[mask],
            pick(self.s),
            pick(self.d),
            self.value[mask],
            self.higher_is_better,
            self.source,
            pick(self.interpolated),
        )

    def frame(self) -> pd.DataFrame:
        out = {"run_id": self.run, "n_params": self.n, "flops": self.c, "value": self.value}
        if self.s is not None:
            out["steps"] = self.s
        if self.d is not None:
            out["samples_seen"] = self.d
        if self.interpolated is not None:
            out["interpolated"] = self.interpolated
        return pd.DataFrame(out)


def select_curves(
    table: pd.DataFrame,
    columns: dict[str, str | None] | None = None,
    *,
    source: str = "data",
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
) -> Curves:
    """Validate and collect the curve points; C comes from the `c` role (default `flops`).

    Samples seen D come from the `d` role (default `samples_seen`) and steps from `steps` (default
    `steps`); both are optional when left at their defaults, and a named column that is missing is an error.
    """
    given = {k: v for k, v in (columns or {}).items() if v}
    cols = resolve_columns({k: v for k, v in given.items() if k not in ("d", "steps")})
    frame, is_csv = prepare_frame(table, source, metric, split)
    if cols["run"] not in frame.columns:
        raise UserError(f"{source}: no column '{cols['run']}': the compute-optimal analysis needs runs (--run)")
    optional_cols = {"s": given.get("steps", "steps"), "d": given.get("d", "samples_seen")}
    for role, option in (("s", "steps"), ("d", "d")):
        if option in given and optional_cols[role] not in frame.columns:
            raise UserError(f"{source}: no column '{optional_cols[role]}' (given for --{option})")
    n = numeric_column(frame, cols["n"], "N", source, is_csv)
    c = numeric_column(frame, cols["c"], "C (training FLOPs)", source, is_csv)
    require_positive(n, frame, cols["n"], source, is_csv, "parameters")
    require_positive(c, frame, cols["c"], source, is_csv, "FLOPs")
    optional = {}
    for role, column in optional_cols.items():
        optional[role] = numeric_column(frame, column, role, source, is_csv) if column in frame.columns else None
    value = numeric_column(frame, cols["y"], "--y", source, is_csv)
    run = frame[cols["run"]].astype(str).to_numpy()
    return Curves(run, n, c, optional["s"], optional["d"], value, higher_is_better, source)
