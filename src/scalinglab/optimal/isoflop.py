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
    minima, dropped, notes = isoflop_scan(curves, n_budgets, min_runs, window)
    notes += [f"isoflop: budget {row.budget:.3g} skipped: {row.reason}" for row in dropped.itertuples()]
    return minima, notes


def isoflop_scan(
    curves: Curves, n_budgets: int = 10, min_runs: int = 3, window: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The usable budgets, the dropped ones with why, and notes on why no budget could be tried.

    minima: budget, n_opt, value (at the vertex), runs (reaching the budget), sizes (model sizes
    reaching it), fitted (sizes in the parabola), n_low and n_high (the sizes fitted span).
    dropped: budget, sizes, reason, cause ("too few sizes", "edge" or "not convex").
    """
    runs = _per_run(curves)
    columns = ["budget", "n_opt", "value", "runs", "sizes", "fitted", "n_low", "n_high"]
    dropped_columns = ["budget", "sizes", "reason", "cause"]
    if len(runs) < min_runs:
        notes = [f"isoflop: {len(runs)} runs with curves (need {min_runs})"]
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=dropped_columns), notes
    lo = np.quantile([lc[0] for _, lc, _ in runs], 0.2)
    hi = np.quantile([lc[-1] for _, lc, _ in runs], 0.8)
    if not hi > lo:
        notes = ["isoflop: the runs' FLOPs ranges do not overlap"]
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=dropped_columns), notes
    rows, dropped = [], []
    for log_budget in np.linspace(lo, hi, n_budgets):
        budget = float(np.exp(log_budget))
        sizes, scores, counts = _at_budget(runs, log_budget)
        if sizes.size < min_runs:
            reason = f"{sizes.size} model sizes reach it (need {min_runs})"
            dropped.append((budget, int(sizes.size), reason, "too few sizes"))
            continue
        log_n, score = _near_minimum(np.log(sizes), scores, window)
        curv, slope, const = np.polyfit(log_n, score, 2)
        if not curv > 0:
            reason = "the profile over the sizes sampled is not convex (no minimum inside them)"
            dropped.append((budget, int(sizes.size), reason, "not convex"))
            continue
        vertex = -slope / (2 * curv)
        if not log_n.min() <= vertex <= log_n.max():
            side = "smallest" if vertex < log_n.min() else "largest"
            reason = (
                f"the best size lies outside the sizes sampled there ({np.exp(log_n.min()):.3g}.."
                f"{np.exp(log_n.max()):.3g}), beyond the {side}"
            )
            dropped.append((budget, int(sizes.size), reason, "edge"))
            continue
        best = const - slope**2 / (4 * curv)
        value = float(-best if curves.higher_is_better else best)
        low, high = float(np.exp(log_n.min())), float(np.exp(log_n.max()))
        rows.append((budget, float(np.exp(vertex)), value, int(counts.sum()), int(sizes.size), log_n.size, low, high))
    return pd.DataFrame(rows, columns=columns), pd.DataFrame(dropped, columns=dropped_columns), []
