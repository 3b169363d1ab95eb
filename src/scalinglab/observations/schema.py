"""The observation columns and the column roles: the one definition every part of the project reads.

No pandas here: the command line's --help and the study store read the names without paying for it.
"""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    dtype: str  # string, float, int or bool
    meaning: str
    analysis: bool  # read by the analyses (and required of a user's own table); the rest a study run adds
    label: str = ""  # what the column is in a few words, for --help


# The one definition of the observation columns, in table order. The study store's table and the rows
# the training loop writes derive from it; `SCHEMA` is the subset every analysis reads.
COLUMNS: dict[str, Column] = {
    "run_id": Column(
        "string", "identifies one training run; several rows per run are points along its curve", True, "the run"
    ),
    "n_params": Column("float", "model capacity N: number of trainable parameters", True, "N"),
    "n_params_nonembed": Column("float", "N without the parameters of embedding tables", False),
    "dataset_size": Column("float", "training set size D: number of distinct training samples", True, "D"),
    "samples_seen": Column(
        "float", "samples processed so far (D x epochs at the end of a run)", True, "samples seen so far"
    ),
    "steps": Column("float", "optimiser steps S so far", True, "S"),
    "flops": Column("float", "cumulative training FLOPs C so far", True, "C"),
    "metric": Column("string", "metric name, e.g. loss, minADE, mAP", True, "metric name"),
    "split": Column("string", "train or eval (or any split name)", True, "split name"),
    "value": Column("float", "the metric's value", True, "the metric's value"),
    "higher_is_better": Column("bool", "whether a larger value of the metric is better", False),
    "wall_time": Column("float", "seconds of training so far, across resumes", False),
    "model_scale": Column("float", "the study's model scale multiplier of the run", False),
    "data_scale": Column("float", "the study's data scale multiplier of the run", False),
    "seed": Column("int", "the run's training seed", False),
}

# column -> (dtype, meaning) of the analysis columns. Any other column is kept and ignored by analyses.
SCHEMA: dict[str, tuple[str, str]] = {name: (c.dtype, c.meaning) for name, c in COLUMNS.items() if c.analysis}

# role -> the column it is read from unless the user names another (--n, --d, ... on the command line).
ROLES: dict[str, str] = {
    "n": "n_params",
    "d": "dataset_size",
    "seen": "samples_seen",  # samples processed so far: the steps-aware forms' third input
    "s": "steps",
    "c": "flops",
    "x": "flops",  # the variable of a one-variable form
    "y": "value",
    "run": "run_id",
    "metric": "metric",
    "split": "split",
}
INPUT_DEFAULTS = ROLES  # the name this mapping had before the roles were one table


def observation_row(**values: object) -> dict[str, object]:
    """One observation as a dict in column order; a missing or unknown column is a bug and raises."""
    if values.keys() != COLUMNS.keys():
        missing, extra = sorted(COLUMNS.keys() - values.keys()), sorted(values.keys() - COLUMNS.keys())
        raise KeyError(f"observation row: missing columns {missing}, unknown columns {extra}")
    return {name: values[name] for name in COLUMNS}


def resolve_columns(columns: dict[str, str | None] | None) -> dict[str, str]:
    """The role -> column mapping, with the schema's names for roles not given."""
    return {**ROLES, **{k: v for k, v in (columns or {}).items() if v}}
