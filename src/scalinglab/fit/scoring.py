"""Scoring a law's form by held-out runs: each candidate's leave-one-run-out error, then the one-SE rule.

Small sweeps (a few model x data scales, one seed per cell) rarely pin down all five chinchilla parameters;
a nested form with fewer free parameters often predicts an unseen run as well or better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.fit.forms import get_form
from scalinglab.fit.multistart import polish
from scalinglab.fit.optimize import objective
from scalinglab.observations import FitData

# Simplest last is not required: the rule ranks by free parameters, then by held-out error.
DEFAULT_CANDIDATES = ("chinchilla", "chinchilla_shared", "chinchilla_no_floor", "chinchilla_no_floor_shared", "kaplan")
ONE_VAR_CANDIDATES = ("power", "power_offset", "m4", "bnsl1")  # for a metric against one variable (--x)
WARM_STARTS = 8  # the full fit's best polished basins start every fold's refit ...
WARM_START_BUDGET = 400  # ... at most this many refits in all: 1 basin a fold on a 400-run grid
REFIT_STAGES = (20, 80, 200, 400, 800, 1600, 1900)  # a refit starts at an optimum: its first stage is short


def warm_starts(n_folds: int) -> int:
    """How many of the full fit's basins start each fold's refit: 8, fewer on many folds, never under 1.

    Each fold leaves out one run (or cell) of many, so the full fit's best basin is nearly always the fold's:
    on a 400-run grid from the chinchilla law, the held-out residuals from 1 basin match those from 8 (each
    refitted to convergence) to 2e-6 for the chinchilla forms and to 1e-4 (the mean |log residual| to 3e-7)
    for Farseer, at an eighth of the work (benchmarks/bench_selection.py).
    """
    return max(1, min(WARM_STARTS, WARM_START_BUDGET // max(n_folds, 1)))


@dataclass
class Selection:
    """Every candidate's held-out error, the form chosen and why."""

    table: pd.DataFrame  # one row per candidate: form, free_params, folds, cv_error, cv_log_error, cv_se, ...
    choice: str
    reason: str
    unit: str  # "cell" (leave one (N, D) cell's runs out), "run" (one run) or "point" (one point)
    scoring: str = "loo"  # what chose: "extrapolation" (forward folds by compute) or "loo" (leave one out)

    @property
    def by_extrapolation(self) -> bool:
        return self.scoring == "extrapolation"

    @property
    def method(self) -> str:
        """What the choice was scored by, in words."""
        if self.by_extrapolation:
            return f"forward folds by compute, leave one {self.unit} out beside"
        return f"leave one {self.unit} out"

    def to_dict(self) -> dict[str, Any]:
        rows = self.table.replace({np.nan: None}).to_dict(orient="records")
        out = {"choice": self.choice, "reason": self.reason, "held_out": self.unit, "scoring": self.scoring}
        return out | {"candidates": rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """The selection `to_dict` wrote (KeyError or TypeError when it is not one)."""
        table = pd.DataFrame(list(data["candidates"])).fillna(value=np.nan)
        scoring = str(data.get("scoring", "loo"))
        return cls(table, str(data["choice"]), str(data["reason"]), str(data["held_out"]), scoring)


def free_parameters(name: str) -> int:
    return int(get_form(name).free.size)


def held_out_groups(data: FitData) -> tuple[np.ndarray, str]:
    """Each point's fold and what a fold holds out: a cell, a run or a point.

    A cell is the runs at one (N, D) (inputs n and d, each constant within those runs: the seeds of one
    grid cell). When some cell has several runs, whole cells are held out: a run predicted by a fit that
    saw its twin at the same (N, D) would understate the error of predicting a new (N, D). Otherwise each
    run is held out, or each point when the data have no runs.
    """
    if data.groups is None:
        return np.arange(data.n_points), "point"
    _, run = np.unique(data.groups, return_inverse=True)
    n_runs = int(run.max()) + 1
    if not {"n", "d"} <= set(data.input_names):
        return run, "run"
    keys = []
    for name in ("n", "d"):
        row = data.inputs[data.input_names.index(name)]
        low, high = np.full(n_runs, np.inf), np.full(n_runs, -np.inf)
        np.minimum.at(low, run, row)
        np.maximum.at(high, run, row)
        if not np.all(low == high):  # a run spans several (N, D): hold out runs
            return run, "run"
        keys.append(low)
    _, cell_of_run = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    cell_of_run = np.asarray(cell_of_run).ravel()
    if int(cell_of_run.max()) + 1 == n_runs:
        return run, "run"
    return cell_of_run[run], "cell"


def cross_validate(law: Any, data: FitData, scored: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refit `law`'s form without each fold (`held_out_groups`: a cell, run or point) and predict it.

    Returns the held-out log residuals (log predicted - log observed, each point predicted by the fit
    that did not see its fold) and each point's fold index, at the points `scored` (indices; default all).
    All folds are solved in one batched polish (`fit.multistart.polish`), each warm-started from the full
    fit's best basins (`warm_starts`) and stopping on its own, after stages that start short (REFIT_STAGES).
    """
    form = law.form_
    lx, ly = np.log(data.inputs), np.log(data.y)
    fold, _ = held_out_groups(data)
    n_folds = int(fold.max()) + 1
    keep = (np.arange(n_folds)[:, None] != fold[None, :]).astype(float)  # (F, n)
    basins = law.basins_[: warm_starts(n_folds)]
    starts = np.tile(basins, (n_folds, 1))
    weights = np.repeat(keep, basins.shape[0], axis=0)
    loss = law.loss_function()
    start_objective = objective(form, starts, lx, ly, loss, weights)
    groups = np.repeat(np.arange(n_folds), basins.shape[0])
    refit = polish(form, lx, ly, loss, starts, start_objective, weights, groups, REFIT_STAGES)
    per_fold = refit.objective.reshape(n_folds, basins.shape[0])
    theta = refit.theta.reshape(n_folds, basins.shape[0], -1)[np.arange(n_folds), np.argmin(per_fold, axis=1)]
    with np.errstate(all="ignore"):
        predicted = form.log_predict(theta, lx)  # (F, n): fold f's law at every point
    points = np.arange(data.n_points) if scored is None else np.asarray(scored)
    return predicted[fold[points], points] - ly[points], fold[points]


def score_candidate(name: str, law: Any, data: FitData, scored: np.ndarray | None = None) -> dict[str, Any]:
    residual, fold = cross_validate(law, data, scored)
    n_folds = int(fold.max()) + 1
    per_fold = np.bincount(fold, weights=np.abs(residual), minlength=n_folds) / np.bincount(fold)
    finite = np.isfinite(per_fold)
    mean = float(np.mean(per_fold)) if finite.all() else np.inf
    se = float(np.std(per_fold, ddof=1) / np.sqrt(n_folds)) if finite.all() and n_folds > 1 else np.inf
    return {
        "form": name,
        "free_params": free_parameters(name),
        "folds": n_folds,
        "cv_error": float(np.median(np.abs(np.expm1(residual)))),  # median relative error of held-out points
        "cv_log_error": mean,  # mean over folds of the mean |log residual|
        "cv_se": se,
        "objective": law.objective_,
        "at_bounds": ", ".join(law.at_bounds_) or None,
    }


def one_se_choice(table: pd.DataFrame, score: str = "cv", what: str = "held-out error") -> tuple[str, str]:
    """The simplest form whose held-out error is within one standard error of the best (Hastie et al. 2009, 7.10).

    `score` names the columns compared: "cv" (leave one out: cv_log_error, cv_se, cv_error) or "extrap"
    (forward-chaining: extrap_log_error, extrap_se, extrap_error); `what` says what they measure in the reason.
    Forms whose fit puts a parameter at a bound come after those that do not: such a fit lies on the edge
    of its form (chinchilla with E at zero is the no-floor form), its intervals are not regular, and a
    nested candidate that makes the edge part of the form says the same without a parameter at a bound.
    Ties in the number of free parameters go to the lower held-out error.
    """
    mean, se, median = f"{score}_log_error", f"{score}_se", f"{score}_error"
    best = table.loc[table[mean].idxmin()]
    limit = best[mean] + (best[se] if np.isfinite(best[se]) else 0.0)
    edge = table["at_bounds"].notna() if "at_bounds" in table else pd.Series(False, index=table.index)
    within = table[table[mean] <= limit].assign(edge=edge)
    within = within.sort_values(["edge", "free_params", mean], kind="stable")
    pick = within.iloc[0]
    if pick["form"] == best["form"]:
        reason = (
            f"lowest {what} ({pick[mean]:.4g} mean |log residual|, median relative "
            f"{pick[median]:.2%}) and no simpler form within one standard error ({best[se]:.2g})"
        )
    else:
        interior = " with no parameter at a bound" if within["edge"].any() and not pick["edge"] else ""
        reason = (
            f"simplest form{interior} ({pick['free_params']} free parameters) within one standard error of the "
            f"best {what}: {pick[mean]:.4g} against {best[mean]:.4g} +/- {best[se]:.2g} for {best['form']}"
        )
    return str(pick["form"]), reason
