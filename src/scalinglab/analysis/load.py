"""Where a study's analysis starts: the observations of a study folder (its store) or of a table file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations import read_table


def load_observations(path: str | Path) -> tuple[pd.DataFrame, str]:
    """A study directory (its store) or an observations file (CSV, TSV, parquet), and how to name it."""
    path = Path(path)
    if path.is_dir():
        from scalinglab.study.store import Store

        store = Store.open(path)
        obs = store.observations()
        if obs.empty:
            raise UserError(f"{path}: the study has no observations yet")
        from scalinglab.study.branches import branch_compute
        from scalinglab.study.pruning import halving_compute

        runs, config = store.runs(), store.config()
        saved, halving = branch_compute(runs, obs), halving_compute(config, runs)
        if saved is not None:
            obs.attrs["branches"] = saved  # what the cooldown branches saved, for the report's overview
        records = runs.astype(object).where(runs.notna(), None).to_dict(orient="records")
        obs.attrs["study"] = {"config": config.model_dump(mode="json"), "runs": records}  # the runs' schedules
        if halving is not None:
            obs.attrs["halving"] = halving  # the trials a halving search stopped (left out of `obs`), and the FLOPs
        return obs, f"{path} ({config.name})"
    return read_table(path), str(path)
