"""Scoring a form by how it extrapolates: forward-chaining folds over compute.

A law is wanted for the runs larger than any trained, so a candidate is scored the way it will be used: fit on
the runs below a compute cut, predict every run above it, for several cuts (the 50th, 62.5th, 75th and 87.5th
percentiles of the runs' compute). A run's compute is N x D at its last point (N x samples seen for a
steps-aware table), so the seeds of one (N, D) cell fall on the same side of every cut. A cut is usable when
the runs below it leave at least two values of every input and more distinct cells than the form's free
parameters plus one; when fewer than two cuts are usable, or the usable cuts hold out fewer than four runs in all
(too few for the paired standard error of the one-SE rule), the table is too small to say how a form
extrapolates (`usable_cuts` is empty) and the search falls back to leave-one-run-out (`fit.scoring`).

Unlike the leave-one-out refits, no fold starts from the fit on every run: that would carry the held-out larger
runs into the fold. The first (lowest) cut is a full multistart fit from the form's own start grid; each later
cut fits on a superset of the runs below the one before, so it starts from that fold's polished basins and every
8th start of the grid (`ScalingLaw.fit_optimum`), which sees nothing it holds out. A fold needs only the optimum
it predicts from, so it skips what a full fit adds (the bound check, the Hessian, intervals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.fit.forms import get_form
from scalinglab.observations import FitData

CUTS = (0.5, 0.625, 0.75, 0.875)  # quantiles of the runs' compute at which the folds cut


@dataclass(frozen=True)
class Fold:
    """One forward-chaining fold: the runs (group labels) below the cut are fitted, those above predicted."""

    quantile: float
    cut: float  # compute at the cut: runs at or below it are fitted
    held_out: np.ndarray  # labels of the runs above the cut


def run_labels(data: FitData) -> np.ndarray:
    """Each point's run label (its group; its own index when the data have no runs)."""
    return np.arange(data.n_points) if data.groups is None else np.asarray(data.groups)


def point_compute(data: FitData) -> np.ndarray:
    """Each point's compute up to the constant k of C = k N D: N x samples seen, N x D, or the one input."""
    names = data.input_names
    if "n" in names and "seen" in names:
        return data.column("n") * data.column("seen")
    if "n" in names and "d" in names:
        return data.column("n") * data.column("d")
    return data.inputs[0]


def run_compute(data: FitData) -> tuple[np.ndarray, np.ndarray]:
    """The distinct run labels and each run's compute (its largest point's)."""
    labels, inverse = np.unique(run_labels(data), return_inverse=True)
    compute = np.zeros(labels.size)
    np.maximum.at(compute, np.asarray(inverse).ravel(), point_compute(data))
    return labels, compute


def forward_folds(data: FitData, cuts: tuple[float, ...] = CUTS) -> list[Fold]:
    """The folds at each distinct cut of the runs' compute (a cut that holds nothing out is dropped)."""
    return folds_over(*run_compute(data), cuts)


def folds_over(labels: np.ndarray, compute: np.ndarray, cuts: tuple[float, ...] = CUTS) -> list[Fold]:
    """The folds of runs `labels` with compute `compute` (one per run) at each distinct quantile cut."""
    levels = np.unique(compute)
    folds, seen = [], set()
    for quantile in cuts:
        cut = float(levels[min(int(np.floor(quantile * levels.size)), levels.size - 1)])
        held_out = labels[compute > cut]
        if held_out.size == 0 or cut in seen:
            continue
        seen.add(cut)
        folds.append(Fold(quantile, cut, held_out))
    return folds


MIN_FOLDS = 2  # fewer usable cuts than this: the table is too small to say how a form extrapolates
# Fewer held-out run predictions (summed over the usable folds) than this: the paired standard error the one-SE
# rule compares candidates with would have two degrees of freedom or fewer (a suite of six models has three).
MIN_HELD_OUT = 4
TOO_FEW = "too few runs to score extrapolation (fewer than 2 usable compute cuts or 4 held-out run predictions)"


def enough(folds: list[Fold]) -> list[Fold]:
    """`folds` when they can score extrapolation (`MIN_FOLDS` cuts, `MIN_HELD_OUT` held-out runs), else none."""
    return folds if len(folds) >= MIN_FOLDS and sum(f.held_out.size for f in folds) >= MIN_HELD_OUT else []


def trainable(data: FitData, mask: np.ndarray, free_params: int) -> bool:
    """Whether the points in `mask` can fit a form with `free_params` parameters: at least two distinct values of
    every input, and more distinct cells (input combinations, samples seen aside) than parameters plus one, so
    that a fold's fit has residual degrees of freedom even when each cell has several seeds."""
    if not all(np.unique(row[mask]).size >= 2 for row in data.inputs):
        return False
    axes = [i for i, name in enumerate(data.input_names) if name != "seen"]
    cells = np.unique(data.inputs[np.ix_(axes, np.flatnonzero(mask))], axis=1).shape[1]
    return cells > free_params + 1


def usable_cuts(data: FitData, folds: list[Fold], free_params: int) -> list[Fold]:
    """The folds whose training runs can fit a form with `free_params` parameters; none when they are too few
    to score extrapolation (`enough`)."""
    labels = run_labels(data)
    return enough([f for f in folds if trainable(data, ~np.isin(labels, f.held_out), free_params)])


def score_extrapolation(
    template: Any, name: str, fit_on: FitData, scored: np.ndarray | None, folds: list[Fold]
) -> tuple[dict[str, Any], pd.Series]:
    """Fit form `name` on each fold's runs below the cut; score its predictions of the runs above it.

    `scored` indexes the points predicted (each run's last checkpoint for a steps-aware candidate; all points
    otherwise). Returns the scores (the mean over folds of the mean |log residual| of the held-out points, the
    median relative error of every held-out prediction, the folds used) and each held-out run's mean |log
    residual| per fold, indexed by (fold, run): what `paired_choice` compares candidates on.
    """
    labels = run_labels(fit_on)
    points = np.arange(fit_on.n_points) if scored is None else np.asarray(scored)
    per_fold, relative, per_run = [], [], []
    estimator = template.clone(form=name, bootstrap=0, intervals=None)
    warm = None
    for index, fold in enumerate(folds):
        test = np.isin(labels, fold.held_out)
        optimum = estimator.fit_optimum(fit_on.subset(~test), warm)
        theta = optimum.theta
        warm = optimum.basins if nested(folds, index) else None
        at = points[test[points]]
        with np.errstate(all="ignore"):
            log_pred = get_form(name).log_predict(theta[None, :], np.log(fit_on.inputs[:, at]))[0]
        residual = np.abs(log_pred - np.log(fit_on.y[at]))
        residual[~np.isfinite(residual)] = np.inf
        per_fold.append(float(np.mean(residual)))
        relative.append(np.abs(np.expm1(residual)))
        runs = pd.Series(residual).groupby(labels[at]).mean()
        per_run.append(pd.Series(runs.to_numpy(), index=pd.MultiIndex.from_product([[index], runs.index])))
    scores = np.asarray(per_fold)
    finite = bool(np.all(np.isfinite(scores)))
    return {
        "extrap_folds": len(folds),
        "extrap_error": float(np.median(np.concatenate(relative))) if finite else np.inf,
        "extrap_log_error": float(np.mean(scores)) if finite else np.inf,
    }, pd.concat(per_run)


def nested(folds: list[Fold], index: int) -> bool:
    """Whether fold `index + 1` fits on every run fold `index` fits on (its cut is higher), so the basins of
    fold `index` can start it without showing it a run it holds out."""
    return index + 1 < len(folds) and folds[index + 1].cut > folds[index].cut


def _describe_form(row: pd.Series) -> str:
    return f"{row['extrap_log_error']:.4g} mean |log residual|, median relative {row['extrap_error']:.2%}"


def paired_choice(
    table: pd.DataFrame,
    per_run: dict[str, pd.Series],
    key: str = "form",
    describe: Callable[[pd.Series], str] = _describe_form,
) -> tuple[str, pd.Series, str]:
    """The simplest candidate whose extrapolation error is within one paired standard error of the best.

    Each candidate is compared with the best on the same held-out runs of the same folds: the difference in
    |log residual| is averaged over the folds that hold each run out, and the standard error is that of these
    per-run differences (paired, so a run every candidate finds hard does not hide a real gap; one value per
    run, as the nested folds predict the largest runs several times). Of the candidates within one standard
    error, those whose leave-one-out error (the secondary score) is more than one of its standard errors above
    the lowest among them drop out, unless best by extrapolation: a simpler form is preferred only where neither
    score can tell it from the better one. The rest rank as in `fit.scoring.one_se_choice`: a fit with a
    parameter at a bound last, then fewer free parameters, then lower error. Returns the choice, each
    candidate's paired standard error, and the reason. `key` names the candidates' column (a link's table
    has `link`), `describe` says the best score in the reason.
    """
    table = table.rename(columns={key: "form"})
    best = str(table.loc[table["extrap_log_error"].idxmin(), "form"])
    se = {}
    for name, errors in per_run.items():
        gap = (errors - per_run[best]).dropna()
        gap = gap.groupby(level=1).mean()  # one difference per run: a run held out by several folds counts once
        finite = gap[np.isfinite(gap)]
        se[name] = (
            float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 and finite.size == gap.size else np.inf
        )
    paired = table["form"].map(se).fillna(np.inf)
    gap = table["extrap_log_error"] - table.loc[table["form"] == best, "extrap_log_error"].iloc[0]
    edge = table["at_bounds"].notna() if "at_bounds" in table else pd.Series(False, index=table.index)
    within = table[(gap <= paired) | (table["form"] == best)].assign(edge=edge)
    if "cv_log_error" in within:  # leave-one-out, the secondary score, keeps those it cannot tell from its best
        top = within.loc[within["cv_log_error"].idxmin()]
        limit = top["cv_log_error"] + (top["cv_se"] if np.isfinite(top["cv_se"]) else 0.0)
        within = within[(within["cv_log_error"] <= limit) | (within["form"] == best)]
    pick = within.sort_values(["edge", "free_params", "extrap_log_error"], kind="stable").iloc[0]
    row = table[table["form"] == best].iloc[0]
    if pick["form"] == best:
        reason = (
            f"lowest error beyond the compute cuts ({describe(row)}) and no simpler {key} that matches it within "
            "one paired standard error and that leave-one-out cannot tell from it"
        )
    else:
        interior = " with no parameter at a bound" if within["edge"].any() and not pick["edge"] else ""
        reason = (
            f"simplest {key}{interior} ({pick['free_params']} free parameters) within one paired standard error of "
            f"the best beyond the compute cuts: {pick['extrap_log_error']:.4g} against {row['extrap_log_error']:.4g} "
            f"for {best} (gap SE {se[str(pick['form'])]:.2g})"
        )
    return str(pick["form"]), paired, reason
