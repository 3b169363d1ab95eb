"""The observations table, the project's one data model: its columns and roles, reading and writing it,
preparing a user's table, each run's last point, and selecting the `FitData` a fit needs.

One row per measurement. Runs write it, every analysis reads it; a user's own CSV or parquet file works as it
is through a column mapping. Names are imported on first use, so `observations.schema` (the column names,
which --help reads) costs no pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "io": ("empty_observations", "read_table", "write_table"),
    "tables": (
        "RUN_BY_COLUMN",
        "build_run_ids",
        "derive_d",
        "metric_rows",
        "parse_run_by",
        "prepare",
        "rename_columns",
    ),
    "runs": ("last_index", "last_mask", "last_rows"),
    "schema": ("COLUMNS", "INPUT_DEFAULTS", "ROLES", "SCHEMA", "Column", "observation_row", "resolve_columns"),
    "select": ("FitData", "select_fit_data"),
    "trials": (
        "TRIAL_COLUMNS",
        "BestOf",
        "best_of",
        "final_metric",
        "parse_best_of",
        "read_best_trials",
        "trial_columns",
    ),
    "validate": ("choose_rows", "is_csv", "numeric_column", "prepare_frame", "require_positive", "where"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
