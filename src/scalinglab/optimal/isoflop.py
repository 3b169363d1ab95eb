"""IsoFLOP profiles (Hoffmann et al. 2022, approach 2): at fixed budgets, the best N from a parabola in log N.

Each run's curve is interpolated (linear in log C) at the budget; the metric across runs is fitted as
a quadratic in log N and its vertex is the optimal N when it lies inside the sampled sizes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.optimal.curves import Curves


def _per_run(curves: Curves) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(N, sorted log C, score) for every run with at least two points."""
    out = []
    for run in curves.runs:
        mask = curves.run == run
        order = np.argsort(curves.c[mask])
        if order.size >= 2:
            out.append((float(np.median(curves.n[mask])), np.log(curves.c[mask][order]), curves.score[mask][order]))
    return out


def _at_budget(runs: list[tuple[float, np.ndarray, np.ndarray]], log_budget: float) -> tuple[np.ndarray, ...]:
    """Distinct model sizes reaching the budget, their best interpolated score there, and runs per size."""
    reached = [(n, np.interp(log_budget, lc, sc)) for n, lc, sc in runs if lc[0] <= log_budget <= lc[-1]]
    if not reached:
        return np.empty(0), np.empty(0), np.empty(0, int)
    sizes, scores = np.array(reached).T
    unique, inverse, counts = np.unique(sizes, return_inverse=True, return_counts=True)
    best = np.full(unique.size, np.inf)
    np.minimum.at(best, inverse, scores)
    return unique, best, counts


def _near_minimum(log_n: np.ndarray, score: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The `window` sizes nearest (in rank of log N) to the observed best: a parabola describes the
    valley near its bottom, not the whole profile."""
    order = np.argsort(log_n)
    log_n, score = log_n[order], score[order]
    best = int(np.argmin(score))
    lo = int(np.clip(best - window // 2, 0, max(log_n.size - window, 0)))
    return log_n[lo : lo + window], score[lo : lo + window]


def isoflop_minima(
    curves: Curves, n_budgets: int = 10, min_runs: int = 3, window: int = 7
) -> tuple[pd.DataFrame, list[str]]:
    """One row per usable budget: budget, n_opt, value at the vertex, runs used; and notes on skipped ones."""
    runs = _per_run(curves)
    columns = ["budget", "n_opt", "value", "runs"]
    if len(runs) < min_runs:
        return pd.DataFrame(columns=columns), [f"isoflop: {len(runs)} runs with curves (need {min_runs})"]
    lo = np.quantile([lc[0] for _, lc, _ in runs], 0.2)
    hi = np.quantile([lc[-1] for _, lc, _ in runs], 0.8)
    if not hi > lo:
        return pd.DataFrame(columns=columns), ["isoflop: the runs' FLOPs ranges do not overlap"]
    notes: list[str] = []
    rows = []
    for log_budget in np.linspace(lo, hi, n_budgets):
        budget = float(np.exp(log_budget))
        sizes, scores, counts = _at_budget(runs, log_budget)
        if sizes.size < min_runs:
            notes.append(f"isoflop: budget {budget:.3g} skipped: {sizes.size} model sizes reach it (need {min_runs})")
            continue
        log_n, score = _near_minimum(np.log(sizes), scores, window)
        curv, slope, const = np.polyfit(log_n, score, 2)
        vertex = -slope / (2 * curv) if curv > 0 else np.nan
        if not (curv > 0 and log_n.min() <= vertex <= log_n.max()):
            notes.append(f"isoflop: budget {budget:.3g} skipped: the best size lies outside the sizes sampled there")
            continue
        best = const - slope**2 / (4 * curv)
        rows.append(
            (budget, float(np.exp(vertex)), float(-best if curves.higher_is_better else best), int(counts.sum()))
        )
    return pd.DataFrame(rows, columns=["budget", "n_opt", "value", "runs"]), notes
