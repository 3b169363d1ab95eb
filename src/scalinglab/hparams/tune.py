"""The hyperparameter analysis of a table with trials: for each hyperparameter that varies within cells, each
cell's optimum, its laws in C and in (N, D), the metric's sensitivity near the optimum, and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.hparams.law import VARIABLES, HparamLaw, fit_hparam_law
from scalinglab.hparams.optimum import optima_of, trial_profile
from scalinglab.observations.trials import trial_columns


@dataclass
class Tuned:
    """One hyperparameter's optima per cell, its laws (None with the reason in `notes`) and sensitivity."""

    column: str
    optima: pd.DataFrame
    laws: dict[str, HparamLaw | None]  # "c" and "nd"
    notes: list[str] = field(default_factory=list)
    points: pd.DataFrame | None = None  # the metric at each (cell, value) the optima are fitted on

    @property
    def cost_2x_rel(self) -> float:
        """The median over bracketed cells of the metric's relative loss at 2x off the optimum."""
        ok = self.optima[self.optima["status"] == "ok"]
        return float(np.median(ok["cost_2x_rel"])) if len(ok) else float("nan")

    def predict(self, n: float | None = None, d: float | None = None, budget: float | None = None) -> dict:
        """The optimum at (n, d) by the law in N and D, and at `budget` by the law in C, each with its interval."""
        out: dict[str, Any] = {}
        for key, values in (("nd", {"n": n, "d": d}), ("c", {"c": budget})):
            law = self.laws.get(key)
            if law is not None and all(v is not None for v in values.values()):
                value, lo, hi = law.predict(**values)
                out[key] = {"at": values, "opt": value, "lo": lo, "hi": hi}
        return out

    def to_dict(self) -> dict[str, Any]:
        optima = self.optima.replace({np.nan: None}).to_dict(orient="records")
        laws = {key: None if law is None else law.to_dict() for key, law in self.laws.items()}
        summary = {"column": self.column, "cells": optima, "laws": laws}
        return summary | {"cost_2x_rel": self.cost_2x_rel, "notes": self.notes}


def tune(
    table: pd.DataFrame,
    hparams: Sequence[str] | None = None,
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
    level: float = 0.95,
    source: str = "data",
) -> list[Tuned]:
    """Each hyperparameter's optima and laws; `hparams` default: the trial columns that vary within a cell."""
    rows = {"metric": metric, "split": split}
    names = list(hparams) if hparams else list(trial_columns(table, columns, source=source, **rows))
    if not names:
        raise UserError(f"{source}: no hyperparameter varies within a cell; name the column with --hparams")
    out = []
    for name in names:
        options = {"higher_is_better": higher_is_better, "source": source, **rows}
        points = trial_profile(table, name, columns, **options)
        optima = optima_of(points, name, higher_is_better=higher_is_better, level=level)
        tuned = Tuned(name, optima, {}, points=points)
        for key in VARIABLES:
            try:
                tuned.laws[key] = fit_hparam_law(optima, name, key, level)
            except UserError as exc:
                tuned.laws[key], tuned.notes = None, [*tuned.notes, str(exc)]
        unbracketed = int((optima["status"] != "ok").sum())
        if unbracketed:
            tuned.notes.append(f"{name}: {unbracketed} of {len(optima)} cells have no bracketed optimum (left out)")
        out.append(tuned)
    return out
