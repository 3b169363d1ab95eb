"""Monotone links metric = f(intermediate): step 2 of a two-step law (e.g. loss -> minADE, loss -> accuracy).

Three families, each linear in two of its parameters once the others are fixed (variable projection):

- `sigmoid`: y = floor + (ceiling - floor) / (1 + exp(k (x - x0))), a floor and a ceiling the metric saturates at
  (Bhagia et al. 2024's ladder link, loss -> accuracy);
- `exponential`: y = c + a exp(b x) (Gadre et al. 2024: loss -> top-1 error);
- `power`: y = c + a x^b.

Each is monotone in x for every parameter value. Fits are least squares on the metric's own scale: a grid over
the nonlinear parameters with the linear ones solved exactly, then the best grid point polished with all
parameters free (scipy's trust-region least squares, within bounds). The link is chosen as forms are
(`select_link`): by how it predicts the runs beyond compute cuts, leave-one-run-out second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from scalinglab.errors import UserError
from scalinglab.fit.extrapolation import TOO_FEW, Fold, enough, folds_over, paired_choice

LINKS = ("sigmoid", "exponential", "power")
FORMULAS = {
    "sigmoid": "y = floor + (ceiling - floor) / (1 + exp(k (x - x0)))",
    "exponential": "y = c + a exp(b x)",
    "power": "y = c + a x^b",
}
PARAMS = {"sigmoid": ("floor", "ceiling", "k", "x0"), "exponential": ("c", "a", "b"), "power": ("c", "a", "b")}


def _unit(x: np.ndarray, name: str, nonlin: np.ndarray) -> np.ndarray:
    """The shape term of the link (n,) for one setting of its nonlinear parameters; y = lin0 + lin1 * term."""
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            k, x0 = nonlin
            return 0.5 * (1 - np.tanh(0.5 * k * (x - x0)))  # 1 / (1 + exp(k (x - x0))), overflow-safe
        if name == "exponential":
            return np.exp(nonlin[0] * x)
        return np.power(x, nonlin[0])


def evaluate_link(name: str, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The link's metric at intermediate values `x`; params in PARAMS[name] order, (P,) or (K, P) -> (..., n)."""
    params = np.asarray(params, dtype=float)
    x = np.asarray(x, dtype=float)
    if params.ndim == 2:
        return np.stack([evaluate_link(name, p, x) for p in params])
    if name == "sigmoid":
        floor, ceiling, k, x0 = params
        return floor + (ceiling - floor) * _unit(x, name, np.array([k, x0]))
    c, a, b = params
    return c + a * _unit(x, name, np.array([b]))


def _grid(name: str, x: np.ndarray) -> np.ndarray:
    """Nonlinear parameter settings (G, q) to try: scales in units of the data's spread, both directions."""
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
    if name == "sigmoid":
        rates = np.geomspace(0.3, 60, 14) / span
        centres = lo + span * np.linspace(-1.5, 2.5, 17)
        k, x0 = np.meshgrid(np.concatenate([-rates, rates]), centres, indexing="ij")
        return np.stack([k.ravel(), x0.ravel()], axis=1)
    if name == "exponential":
        rates = np.geomspace(0.01, 40, 30) / span
        return np.concatenate([-rates, rates])[:, None]
    return np.concatenate([-np.geomspace(0.05, 30, 25), np.geomspace(0.05, 30, 25)])[:, None]


def _solve_linear(term: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of y on [1, term]: the two linear parameters and the residual sum of squares."""
    basis = np.stack([np.ones_like(term), term], axis=1) * np.sqrt(w)[:, None]
    target = y * np.sqrt(w)
    if not np.all(np.isfinite(basis)):
        return np.full(2, np.nan), np.inf
    coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
    rss = float(np.sum((basis @ coef - target) ** 2))
    return coef, rss


def _bounds(name: str, x: np.ndarray, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
    if name == "sigmoid":
        big = 1e3 / span
        return (
            np.array([limits[0], limits[0], -big, lo - 10 * span]),
            np.array([limits[1], limits[1], big, hi + 10 * span]),
        )
    top = 100 / span if name == "exponential" else 60.0
    return np.array([-np.inf, -np.inf, -top]), np.array([np.inf, np.inf, top])


def _full_params(name: str, coef: np.ndarray, nonlin: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return np.array([coef[0], coef[0] + coef[1], nonlin[0], nonlin[1]])
    return np.array([coef[0], coef[1], nonlin[0]])


def _polish(
    name: str, start: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray, limits: tuple[float, float]
) -> tuple[np.ndarray, float]:
    lower, upper = _bounds(name, x, limits)
    with np.errstate(invalid="ignore"):
        inner_lo = np.where(np.isfinite(lower), lower + 1e-12 * np.abs(lower), lower)
        inner_hi = np.where(np.isfinite(upper), upper - 1e-12 * np.abs(upper), upper)
    start = np.clip(start, inner_lo, inner_hi)
    start = np.where(np.isfinite(start), start, 0.0)
    sw = np.sqrt(w)

    def residual(p: np.ndarray) -> np.ndarray:
        r = (evaluate_link(name, p, x) - y) * sw
        return np.where(np.isfinite(r), r, 1e6)

    try:
        result = least_squares(residual, start, bounds=(lower, upper), x_scale="jac", max_nfev=400)
    except ValueError:
        return start, float(np.sum(residual(start) ** 2))
    return result.x, float(2 * result.cost)


def fit_link_params(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    limits: tuple[float, float] = (-np.inf, np.inf),
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Least-squares parameters of link `name` on (x, y) and their residual sum of squares.

    With `start` (a previous fit, e.g. the full-data fit for a bootstrap refit) the grid is skipped.
    `limits` bound the sigmoid's floor and ceiling (accuracy in [0, 1], an error above 0).
    """
    if name not in LINKS:
        raise UserError(f"unknown link '{name}'; choose one of: {', '.join(LINKS)}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    if start is None:
        best, best_rss = None, np.inf
        for nonlin in _grid(name, x):
            coef, rss = _solve_linear(_unit(x, name, nonlin), y, w)
            if rss < best_rss:
                best, best_rss = _full_params(name, coef, nonlin), rss
        if best is None:
            raise UserError(f"link '{name}': no grid point gives a finite fit")
        start = best
    params, rss = _polish(name, np.asarray(start, float), x, y, w, limits)
    if name == "sigmoid" and params[0] > params[1]:  # the same curve with floor below ceiling: k changes sign
        params = np.array([params[1], params[0], -params[2], params[3]])
    return params, rss


@dataclass
class Link:
    """A fitted link: its family, parameters and the spread of its residuals."""

    name: str
    params: np.ndarray
    rss: float
    n_points: int
    domain: tuple[float, float]

    @property
    def formula(self) -> str:
        return FORMULAS[self.name]

    @property
    def named_params(self) -> dict[str, float]:
        return dict(zip(PARAMS[self.name], (float(v) for v in self.params), strict=True))

    @property
    def residual_sd(self) -> float:
        dof = max(self.n_points - self.params.size, 1)
        return float(np.sqrt(self.rss / dof))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return evaluate_link(self.name, self.params, x)

    def to_dict(self) -> dict[str, Any]:
        return {
            "link": self.name,
            "formula": self.formula,
            "params": self.named_params,
            "theta": self.params.tolist(),
            "residual_sd": self.residual_sd,
            "n_points": self.n_points,
            "domain": list(self.domain),
        }


def fit_link(name: str, x: np.ndarray, y: np.ndarray, limits: tuple[float, float] = (-np.inf, np.inf)) -> Link:
    params, rss = fit_link_params(name, x, y, limits=limits)
    return Link(name, params, rss, int(np.size(y)), (float(np.min(x)), float(np.max(x))))


@dataclass
class LinkSelection:
    """Every candidate link's held-out error, the one chosen and why."""

    table: pd.DataFrame  # link, free_params, folds, cv_error, cv_se, rss, [extrap_folds, extrap_error], chosen
    choice: str
    reason: str
    unit: str  # "run" or "point"
    scoring: str = "loo"  # what chose: "extrapolation" (runs beyond compute cuts) or "loo"

    def to_dict(self) -> dict[str, Any]:
        rows = self.table.replace({np.nan: None}).to_dict(orient="records")
        return {
            "choice": self.choice,
            "reason": self.reason,
            "held_out": self.unit,
            "scoring": self.scoring,
            "candidates": rows,
        }


def cross_validate_link(
    name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, limits: tuple[float, float], start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out residuals (predicted - observed) of every point by the link refitted without its run, and folds."""
    groups = np.arange(y.size) if groups is None else groups
    _, fold = np.unique(groups, return_inverse=True)
    residual = np.empty(y.size)
    for f in range(int(fold.max()) + 1):
        out = fold == f
        params, _ = fit_link_params(name, x[~out], y[~out], limits=limits, start=start)
        residual[out] = evaluate_link(name, params, x[out]) - y[out]
    return residual, fold


def link_folds(x: np.ndarray, groups: np.ndarray, compute: np.ndarray, free_params: int) -> list[Fold]:
    """Forward-chaining folds over the runs' compute (each run's largest pair's) whose runs below the cut can fit
    a link with `free_params` parameters: three runs or more and more distinct x than parameters plus one. None
    when they are too few to score extrapolation (`fit.extrapolation.enough`)."""
    frame = pd.DataFrame({"run": groups, "compute": compute}).groupby("run")["compute"].max()
    usable = []
    for fold in folds_over(frame.index.to_numpy(), frame.to_numpy()):
        train = ~np.isin(groups, fold.held_out)
        if np.unique(groups[train]).size >= 3 and np.unique(x[train]).size > free_params + 1:
            usable.append(fold)
    return enough(usable)


def extrapolate_link(
    name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: list[Fold], limits: tuple[float, float]
) -> tuple[float, pd.Series]:
    """Link `name` fitted on each fold's runs below the cut (from its own grid, no warm start) and scored on the
    runs above: the mean over folds of the mean |residual| (metric units), and each held-out run's mean
    |residual| per fold, indexed by (fold, run), for the paired comparison."""
    per_fold, per_run = [], []
    for index, fold in enumerate(folds):
        test = np.isin(groups, fold.held_out)
        params, _ = fit_link_params(name, x[~test], y[~test], limits=limits)
        residual = np.abs(evaluate_link(name, params, x[test]) - y[test])
        residual[~np.isfinite(residual)] = np.inf
        per_fold.append(float(np.mean(residual)))
        runs = pd.Series(residual).groupby(groups[test]).mean()
        per_run.append(pd.Series(runs.to_numpy(), index=pd.MultiIndex.from_product([[index], runs.index])))
    return float(np.mean(per_fold)), pd.concat(per_run)


def _loo_row(name: str, link: Link, x, y, groups, limits, n_folds: int) -> dict[str, Any]:
    """Link `name`'s leave-one-run-out score (the table's cv_ columns)."""
    row: dict[str, Any] = {"link": name, "free_params": len(PARAMS[name]), "folds": n_folds, "rss": link.rss}
    if n_folds < 3:
        return row
    residual, fold = cross_validate_link(name, x, y, groups, limits, link.params)
    per_fold = np.bincount(fold, weights=np.abs(residual)) / np.bincount(fold)
    finite = bool(np.all(np.isfinite(per_fold)))
    row["cv_error"] = float(np.mean(per_fold)) if finite else np.inf
    row["cv_se"] = float(np.std(per_fold, ddof=1) / np.sqrt(n_folds)) if finite else np.inf
    return row


def select_link(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    candidates: tuple[str, ...] | list[str] = LINKS,
    limits: tuple[float, float] = (-np.inf, np.inf),
    scoring: str = "extrapolation",
    compute: np.ndarray | None = None,
) -> tuple[LinkSelection, dict[str, Link]]:
    """Fit every candidate link and choose one, as forms are chosen (`fit.search`).

    With `scoring` "extrapolation" and each pair's `compute` (N x D of its checkpoint), each link is fitted on
    the runs below forward-chaining compute cuts and scored on the runs above (mean |residual|, metric units);
    the choice is the simplest link within one paired standard error of the best, leave-one-run-out as the
    secondary score (`fit.extrapolation.paired_choice`). Without compute, or with fewer than two usable cuts,
    and with `scoring` "loo": the link with the fewest parameters within one standard error of the best
    leave-one-run-out error, ties to the lower.
    """
    if scoring not in ("extrapolation", "loo"):
        raise UserError(f"link selection: scoring must be extrapolation or loo, not '{scoring}'")
    unknown = [name for name in candidates if name not in LINKS]
    if unknown:
        raise UserError(f"unknown link '{unknown[0]}'; choose one of: {', '.join(LINKS)}")
    labels = np.arange(y.size) if groups is None else np.asarray(groups)
    n_folds = int(np.unique(labels).size)
    links = {name: fit_link(name, x, y, limits) for name in candidates}
    rows = [_loo_row(name, links[name], x, y, groups, limits, n_folds) for name in candidates]
    unit = "point" if groups is None else "run"
    table = pd.DataFrame(rows)
    free = max(len(PARAMS[name]) for name in candidates)
    folds = link_folds(x, labels, compute, free) if scoring == "extrapolation" and compute is not None else []
    if folds:
        return _by_extrapolation(table, links, x, y, labels, folds, limits, unit)
    if "cv_error" not in table:  # too few runs to hold any out: the best in-sample fit
        choice = min(links, key=lambda k: links[k].rss)
        table = table[["link", "free_params", "rss"]].assign(chosen=lambda t: t["link"] == choice)
        return LinkSelection(table, choice, f"fewer than 3 {unit}s to hold out: lowest in-sample error", unit), links
    choice, reason = _one_se(table)
    if scoring == "extrapolation":
        reason = f"{TOO_FEW}; by leave-one-run-out: {reason}"
    table["chosen"] = table["link"] == choice
    table = table.sort_values("cv_error", kind="stable").reset_index(drop=True)
    return LinkSelection(table, choice, reason, unit), links


def _by_extrapolation(
    table: pd.DataFrame, links: dict[str, Link], x, y, labels, folds: list[Fold], limits, unit: str
) -> tuple[LinkSelection, dict[str, Link]]:
    """The extrapolation scores added to `table`, and the paired one-SE choice on them."""
    scores, per_run = {}, {}
    for name in links:
        scores[name], per_run[name] = extrapolate_link(name, x, y, labels, folds, limits)
    table = table.assign(extrap_folds=len(folds), extrap_error=table["link"].map(scores))
    scored = table.rename(columns={"extrap_error": "extrap_log_error", "cv_error": "cv_log_error"})
    choice, _, reason = paired_choice(scored, per_run, key="link", describe=_describe_link)
    table["chosen"] = table["link"] == choice
    table = table.sort_values("extrap_error", kind="stable").reset_index(drop=True)
    return LinkSelection(table, choice, reason, unit, scoring="extrapolation"), links


def _describe_link(row: pd.Series) -> str:
    return f"{row['extrap_log_error']:.4g} mean |residual|"


def _one_se(table: pd.DataFrame) -> tuple[str, str]:
    best = table.loc[table["cv_error"].idxmin()]
    limit = best["cv_error"] + (best["cv_se"] if np.isfinite(best["cv_se"]) else 0.0)
    pick = table[table["cv_error"] <= limit].sort_values(["free_params", "cv_error"], kind="stable").iloc[0]
    if pick["link"] == best["link"]:
        return str(pick["link"]), (
            f"lowest held-out error ({pick['cv_error']:.4g} mean |residual|) and no simpler link within one "
            f"standard error ({best['cv_se']:.2g})"
        )
    return str(pick["link"]), (
        f"simplest link ({pick['free_params']} parameters) within one standard error of the best: "
        f"{pick['cv_error']:.4g} against {best['cv_error']:.4g} +/- {best['cv_se']:.2g} for {best['link']}"
    )
