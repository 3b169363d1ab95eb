"""Trials: runs of one (N, D) cell that differ only in their hyperparameters, and the best trial of each cell.

A sweep that tries several learning rates (or batch sizes, ...) per cell measures the law at each cell's best
setting only in its best trial; a law fitted on every trial mixes in runs that are worse for reasons the law
does not model. `best_of` keeps, for each cell, every run of the trial whose final metric is best (averaged
over the trial's seeds, so a lucky seed does not choose), and every row of those runs (curves included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations.runs import last_rows
from scalinglab.observations.schema import resolve_columns
from scalinglab.observations.validate import choose_rows, numeric_column

# Columns that, by their name, hold a hyperparameter a sweep's trials vary (a study's export writes these).
TRIAL_COLUMNS = ("lr", "learning_rate", "batch_size", "warmup_steps", "warmup", "weight_decay", "beta2")


@dataclass(frozen=True)
class BestOf:
    """The rows of each cell's best trial, and what was chosen."""

    table: pd.DataFrame  # every row of the best trials' runs, in table order
    columns: tuple[str, ...]  # the hyperparameter columns the trials differ in
    choices: pd.DataFrame  # one row per cell: its inputs, the best trial's columns, its final metric, trials
    runs: int  # runs in the table
    kept: int  # runs of the best trials

    @property
    def note(self) -> str:
        listed = ", ".join(f"'{c}'" for c in self.columns)
        return (
            f"read the best trial of each of {len(self.choices)} cells by {listed} ({self.kept} of {self.runs} "
            "runs); pass --all-trials to fit every run"
        )


def parse_best_of(text: str | None) -> list[str] | None:
    """'lr,batch_size' -> ['lr', 'batch_size']; None stays None; an empty name is a UserError."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise UserError(f"--best-of '{text}': give column names separated by commas")
    return names


def final_metric(
    table: pd.DataFrame,
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    source: str = "data",
) -> pd.DataFrame:
    """Each run's last row of the metric (split: the one given, else 'eval' when the table has it).

    A table without a run column is one row per run. The rows keep their table index.
    """
    cols = resolve_columns(columns)
    frame = choose_rows(table, "metric", metric, source, "--metric")
    if split is None and "split" in frame and frame["split"].nunique() > 1 and "eval" in set(frame["split"]):
        split = "eval"
    frame = choose_rows(frame, "split", split, source, "--split")
    if frame.empty:
        raise UserError(f"{source}: no rows of the metric to choose trials by")
    if cols["run"] not in frame:
        return frame
    order = next((c for c in ("steps", "samples_seen", "flops") if c in frame), None)
    return last_rows(frame, cols["run"], order)


def _cell_columns(frame: pd.DataFrame, cols: dict[str, str]) -> list[str]:
    """What names a cell: N, and D (else the samples seen, else C), as the table has them."""
    n = [cols["n"]] if cols["n"] in frame else []
    d = next((cols[r] for r in ("d", "seen", "c") if cols[r] in frame), None)
    if not n and d is None:
        raise UserError("the table has neither N nor D columns: cells cannot be told apart")
    return n + ([d] if d is not None else [])


def trial_columns(
    table: pd.DataFrame, columns: dict[str, str | None] | None = None, *, source: str = "data", **rows: str | None
) -> tuple[str, ...]:
    """The hyperparameter columns (`TRIAL_COLUMNS`) that take several values within some cell; () when none."""
    present = [c for c in TRIAL_COLUMNS if c in table.columns]
    if not present:
        return ()
    cols = resolve_columns(columns)
    final = final_metric(table, columns, source=source, **rows)
    cell = _cell_columns(final, cols)
    counts = final.groupby(cell, dropna=False)[present].nunique(dropna=False).max()
    return tuple(c for c in present if counts[c] > 1)


def read_best_trials(
    table: pd.DataFrame,
    trials: Sequence[str] | None | bool = None,
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
    source: str = "data",
) -> BestOf | None:
    """Each cell's best trial by the `trials` columns (None: the `trial_columns` the table has), or None when
    `trials` is False or the table has no trials."""
    if trials is False:
        return None
    by = list(trials or trial_columns(table, columns, source=source, metric=metric, split=split))
    if not by:
        return None
    return best_of(table, by, columns, metric=metric, split=split, higher_is_better=higher_is_better, source=source)


def best_of(
    table: pd.DataFrame,
    by: Sequence[str],
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
    source: str = "data",
) -> BestOf:
    """Each cell's best trial: the combination of `by` columns whose runs' mean final metric is best."""
    cols = resolve_columns(columns)
    by = list(by)
    for name in by:
        if name not in table.columns:
            listed = ", ".join(f"'{c}'" for c in table.columns[:20])
            raise UserError(f"{source}: no column '{name}' (given for --best-of); columns are {listed}")
    final = final_metric(table, columns, metric=metric, split=split, source=source)
    framed = final.assign(_row=np.arange(len(final)))
    value = numeric_column(framed, cols["y"], "--y", source, source.lower().endswith((".csv", ".tsv")))
    cell = _cell_columns(final, cols)
    keyed = final[cell + by].astype(str).assign(_value=-value if higher_is_better else value)
    means = keyed.groupby(cell + by, sort=False, dropna=False)["_value"].agg(["mean", "size"]).reset_index()
    trials = means.groupby(cell, sort=False)["mean"].transform("size")
    best = means.loc[means.groupby(cell, sort=False)["mean"].idxmin()].assign(trials=trials)
    chosen = keyed[cell + by].merge(best[cell + by], how="left", indicator=True)["_merge"].eq("both").to_numpy()
    run_col = cols["run"]
    if run_col in table:
        kept_runs = set(final.loc[chosen, run_col].astype(str))
        kept = table[table[run_col].astype(str).isin(kept_runs)]
        runs = int(table[run_col].astype(str).nunique())
    else:
        kept, runs, kept_runs = table.loc[final.index[chosen]], len(final), set(final.index[chosen])
    choices = best.assign(value=-best["mean"] if higher_is_better else best["mean"]).drop(columns=["mean", "size"])
    return BestOf(kept, tuple(by), choices.reset_index(drop=True), runs, len(kept_runs))
