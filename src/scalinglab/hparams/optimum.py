"""Each cell's optimal value of one hyperparameter, from a smooth fit of the metric against its logarithm.

Per (N, D) cell, the metric at each value of the hyperparameter (the best over the other hyperparameters'
values, the mean over seeds) is fitted by a parabola in log(value) through the best value and its `window`
neighbours on each side; the optimum is the parabola's vertex, with a delta-method interval when the fit
has residual degrees of freedom. A best value at either end of the grid does not bracket the optimum, and
the cell is marked, not extrapolated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from scalinglab.errors import UserError
from scalinglab.observations.schema import resolve_columns
from scalinglab.observations.trials import TRIAL_COLUMNS, final_metric
from scalinglab.observations.validate import numeric_column

LN2_SQUARED = float(np.log(2.0) ** 2)


def _profile(final: pd.DataFrame, column: str, cell: list[str], value: str) -> pd.DataFrame:
    """The metric (lower is better) at each (cell, column value): the mean over seeds, the best over the rest."""
    others = [c for c in TRIAL_COLUMNS if c in final and c != column and final[c].nunique() > 1]
    means = final.groupby([*cell, column, *others], dropna=False)[value].mean().reset_index()
    return means.groupby([*cell, column], dropna=False)[value].min().reset_index()


def _vertex(x: np.ndarray, y: np.ndarray, level: float) -> dict[str, float | str]:
    """The parabola's vertex through the points nearest the best, with its interval and curvature."""
    centre = x[int(np.argmin(y))]
    design = np.stack([np.ones_like(x), x - centre, (x - centre) ** 2], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    if not coef[2] > 0:
        return {"status": "flat: the metric has no minimum in this range"}
    vertex = centre - coef[1] / (2 * coef[2])
    out: dict[str, float | str] = {
        "log_opt": float(vertex),
        "at_opt": float(coef[0] - coef[1] ** 2 / (4 * coef[2])),
        "curvature": float(coef[2]),
        "log_se": float("nan"),
        "status": "ok",
    }
    dof = x.size - 3
    if dof > 0:
        rss = float(np.sum((y - design @ coef) ** 2))
        cov = rss / dof * np.linalg.pinv(design.T @ design)
        grad = np.array([0.0, -1 / (2 * coef[2]), coef[1] / (2 * coef[2] ** 2)])
        se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
        out |= {"log_se": se, "half_width": float(stats.t.ppf(0.5 + level / 2, dof) * se)}
    return out


def _fit_cell(x: np.ndarray, y: np.ndarray, window: int, level: float) -> dict[str, float | str]:
    """One cell's optimum from its (log value, metric) points, sorted by value."""
    if x.size < 3:
        return {"status": f"too few values ({x.size}; a parabola needs 3)"}
    best = int(np.argmin(y))
    if best in (0, x.size - 1):
        end = "smallest" if best == 0 else "largest"
        return {"status": f"edge: the best value is the grid's {end}; the optimum is not bracketed"}
    lo, hi = max(0, best - window), min(x.size, best + window + 1)
    return _vertex(x[lo:hi], y[lo:hi], level)


def trial_profile(
    table: pd.DataFrame,
    column: str,
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
    source: str = "data",
) -> pd.DataFrame:
    """One row per (cell, value of `column`): n, d, c, the value, and the metric there (`value`: the mean over
    seeds of each trial's final metric, the best over the other hyperparameters' values), in table units.

    C is the cell's median training FLOPs (6 N D without a FLOPs column).
    """
    cols = resolve_columns(columns)
    if column not in table.columns:
        listed = ", ".join(f"'{c}'" for c in table.columns[:20])
        raise UserError(f"{source}: no column '{column}' (the hyperparameter); columns are {listed}")
    final = final_metric(table, columns, metric=metric, split=split, source=source).reset_index(drop=True)
    framed = final.assign(_row=np.arange(len(final)))
    text = source.lower().endswith((".csv", ".tsv"))
    inputs = {role: numeric_column(framed, cols[role], f"--{role}", source, text) for role in ("n", "d")}
    hparam = numeric_column(framed, column, "the hyperparameter", source, text)
    if np.any(hparam <= 0):
        raise UserError(f"{source}: column '{column}' has values <= 0; its optimum is fitted in log scale")
    value = numeric_column(framed, cols["y"], "--y", source, text)
    flops = framed[cols["c"]].to_numpy(float) if cols["c"] in framed else 6.0 * inputs["n"] * inputs["d"]
    sign = -1.0 if higher_is_better else 1.0
    work = pd.DataFrame({"n": inputs["n"], "d": inputs["d"], column: hparam, "value": sign * value})
    for name in TRIAL_COLUMNS:
        if name in final and name != column:
            work[name] = final[name].to_numpy()
    profile = _profile(work, column, ["n", "d"], "value")
    cell_flops = pd.DataFrame({"n": inputs["n"], "d": inputs["d"], "c": flops}).groupby(["n", "d"]).c.median()
    profile["value"] *= sign
    return profile.join(cell_flops, on=["n", "d"])[["n", "d", "c", column, "value"]]


def cell_optima(
    table: pd.DataFrame,
    column: str,
    columns: dict[str, str | None] | None = None,
    *,
    metric: str | None = None,
    split: str | None = None,
    higher_is_better: bool = False,
    window: int = 2,
    level: float = 0.95,
    source: str = "data",
) -> pd.DataFrame:
    """One row per (N, D) cell: n, d, c, the values tried, the optimum (opt, lo, hi), the metric there, and the
    cost of a 2x error in the hyperparameter (cost_2x, and relative to the metric at the optimum: cost_2x_rel).

    `status` is "ok" or why a cell has no optimum (the best value at the grid's end, a flat metric, too few
    values). The points are `trial_profile`'s.
    """
    rows = {"metric": metric, "split": split, "higher_is_better": higher_is_better, "source": source}
    profile = trial_profile(table, column, columns, **rows)
    return optima_of(profile, column, higher_is_better=higher_is_better, window=window, level=level)


def optima_of(
    profile: pd.DataFrame, column: str, *, higher_is_better: bool = False, window: int = 2, level: float = 0.95
) -> pd.DataFrame:
    """`cell_optima` from the points `trial_profile` gave."""
    sign = -1.0 if higher_is_better else 1.0
    out = []
    for (n, d), cell in profile.groupby(["n", "d"], sort=True):
        cell = cell.sort_values(column)
        x, y = np.log(cell[column].to_numpy(float)), sign * cell["value"].to_numpy(float)
        fit = _fit_cell(x, y, window, level)
        out.append({"n": n, "d": d, "c": float(cell["c"].iloc[0])} | _row(fit, x))
    optima = pd.DataFrame(out)
    optima["at_opt"] *= sign
    return optima


def _row(fit: dict[str, float | str], x: np.ndarray) -> dict[str, float | str | int]:
    """A cell's fit in the hyperparameter's own units."""
    log_opt = float(fit.get("log_opt", np.nan))
    half = float(fit.get("half_width", np.nan))
    curvature = float(fit.get("curvature", np.nan))
    at_opt = float(fit.get("at_opt", np.nan))
    return {
        "values": int(x.size),
        "low": float(np.exp(x.min())) if x.size else np.nan,
        "high": float(np.exp(x.max())) if x.size else np.nan,
        "opt": float(np.exp(log_opt)),
        "lo": float(np.exp(log_opt - half)),
        "hi": float(np.exp(log_opt + half)),
        "log_se": float(fit.get("log_se", np.nan)),
        "at_opt": at_opt,
        "cost_2x": curvature * LN2_SQUARED,
        "cost_2x_rel": curvature * LN2_SQUARED / abs(at_opt) if at_opt else np.nan,
        "status": str(fit["status"]),
    }
