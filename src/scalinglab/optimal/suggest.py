"""Which run to train next: candidates ranked by how much they are expected to narrow a decision's interval per FLOP.

The decision quantity is N_opt at a budget C (from the fitted L(N, D) = E + A/N^alpha + B/D^beta, in closed
form) or the predicted metric at a target (N, D). Its current 95% interval comes from K run-bootstrap refits
of the law. For a candidate run (N, D), each of those K replicas is refitted with the candidate added: the
same resampled runs (so the comparison is paired), plus the candidate's outcome drawn from the current fit's
prediction times log-normal noise at the fit's residual scale (root mean square of the log
residuals, on n - 5 degrees of freedom) (M stratified noise levels, one per replica in
turn). The width of the refitted replicas' interval is the candidate's expected width; the score is the
expected shrinkage (current width - expected width) per FLOP of the candidate, k N D. The K x candidates
refits run as batched optimisations (CHUNK candidates at a time), each warm-started from its replica.

This is a preposterior estimate under the current fit: it assumes the form is right and the truth near
the fitted law; it says which run is most informative about the decision, not what the run will show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from scalinglab.errors import UserError, check_flops_per_param_sample, check_level, check_whole
from scalinglab.fit.bootstrap import resample_weights
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.optimize import minimize
from scalinglab.observations import FitData
from scalinglab.optimal.parametric import allocation_coefficients

MIN_REPLICAS = 20
NOISE_LEVELS = 8  # stratified normal quantiles for the candidate's outcome noise
MIN_NOISE = 1e-4  # floor of the residual scale (log units), for fits that pass through every point
CHUNK = 16  # candidates refitted per batch (bounds the batch's weight matrix)
REFIT = {"max_iter": 500, "ftol": 1e-10}  # the same for the current replicas and the candidates' refits


@dataclass
class Suggestions:
    """Candidates ranked best first (`table`), the decision quantity now (`current`) and notes (`warnings`).

    table columns: n_params, dataset_size, flops, current_width, expected_width, shrinkage,
    relative_shrinkage, score (shrinkage per FLOP), rank. Widths are in decades (log10 upper/lower) for
    N_opt and in the metric's units for a prediction (`width_unit`).
    """

    table: pd.DataFrame
    quantity: str
    width_unit: str
    current: dict[str, float]
    noise: float
    replicas: int
    warnings: list[str] = field(default_factory=list)

    def top(self, k: int) -> pd.DataFrame:
        return self.table.head(k)

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        rows = self.table if top is None else self.table.head(top)
        return {
            "quantity": self.quantity,
            "width_unit": self.width_unit,
            "current": self.current,
            "noise": self.noise,
            "replicas": self.replicas,
            "suggestions": [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                for row in rows.to_dict(orient="records")
            ],
            "warnings": list(self.warnings),
        }


def default_candidates(n: np.ndarray, d: np.ndarray, scales: tuple[float, ...] = (2.0, 4.0)) -> np.ndarray:
    """(K, 2) candidate (N, D): every observed model size and data size, and `scales` times the largest of
    each, crossed; pairs already observed are left out."""
    n_grid = np.unique(np.concatenate([np.unique(n), n.max() * np.asarray(scales)]))
    d_grid = np.unique(np.concatenate([np.unique(d), d.max() * np.asarray(scales)]))
    return grid_candidates(n_grid, d_grid, n, d)


def grid_candidates(n_grid: np.ndarray, d_grid: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The N x D grid, less the pairs already observed (to a relative 1e-9)."""
    pairs = np.array([(a, b) for a in n_grid for b in d_grid], dtype=float)
    seen = np.stack([n, d], axis=1)
    close = np.all(np.abs(np.log(pairs[:, None, :]) - np.log(seen[None, :, :])) < 1e-9, axis=2).any(axis=1)
    return pairs[~close]


class _Decision:
    """The decision quantity of a batch of internal parameters: log10 N_opt at a budget, or the metric at (N, D)."""

    def __init__(self, law: ScalingLaw, budget: float | None, target: tuple[float, float] | None, k: float):
        self.law, self.budget, self.target, self.k = law, budget, target, k
        if budget is not None:
            self.name = f"N_opt at {budget:.3g} FLOPs"
            self.unit = "decades (log10 upper/lower)"
        else:
            self.name = f"prediction at N = {target[0]:.3g}, D = {target[1]:.3g}"
            self.unit = "metric units (upper - lower)"

    def values(self, theta: np.ndarray) -> np.ndarray:
        """One value per row of theta; NaN where it is undefined (an exponent at zero for N_opt)."""
        form = self.law.form_
        if self.budget is not None:
            params = {k: np.asarray(v, dtype=float) for k, v in form.to_public(theta).items()}
            ok = (params["alpha"] > 0) & (params["beta"] > 0)
            safe = {k: np.where(ok, v, 1.0) for k, v in params.items()}
            log_kn, a, _, _ = allocation_coefficients(safe, self.k)
            return np.where(ok, (log_kn + a * np.log(self.budget)) / np.log(10), np.nan)
        lx = np.log(np.array([[self.target[0]], [self.target[1]]], dtype=float))
        with np.errstate(over="ignore"):
            return self.law.to_metric(np.exp(form.log_predict(theta, lx)[:, 0]))


def _interval(values: np.ndarray, ci_level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return np.nan, np.nan
    tail = 50 * (1 - ci_level)
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def suggest_runs(
    data: FitData,
    *,
    budget: float | None = None,
    target: tuple[float, float] | None = None,
    candidates: np.ndarray | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    noise: float | None = None,
    flops_per_param_sample: float = 6.0,
    ci_level: float = 0.95,
    higher_is_better: bool = False,
    ceiling: float = 1.0,
    law: ScalingLaw | None = None,
) -> Suggestions:
    """Rank `candidates` ((K, 2) N, D; default `default_candidates`) by expected interval shrinkage per FLOP.

    Exactly one of `budget` (N_opt there) and `target` ((N, D): the prediction there) names the decision.
    `noise`: the candidate outcome's log-normal scale (default: the fit's residual scale). `law`: a
    chinchilla law already fitted to `data` (fitted here when not given).
    """
    _check(data, budget, target, bootstrap, seed, noise, flops_per_param_sample, ci_level)
    if law is None:
        law = ScalingLaw(form="chinchilla", intervals=None, higher_is_better=higher_is_better, ceiling=ceiling)
        law.fit(data)
    if law.form_.name != "chinchilla":
        raise UserError(f"suggest needs a chinchilla law in N and D, not '{law.form_.name}'")
    form, loss = law.form_, law.loss_function()
    n_obs, d_obs = data.inputs
    candidates = default_candidates(n_obs, d_obs) if candidates is None else np.asarray(candidates, dtype=float)
    if candidates.ndim != 2 or candidates.shape[1] != 2 or not len(candidates):
        raise UserError("suggest: no candidate runs (every candidate on the grid is already observed)")
    if np.any(~np.isfinite(candidates) | (candidates <= 0)):
        raise UserError("suggest: candidate N and D must be finite and > 0")
    decision = _Decision(law, budget, target, flops_per_param_sample)

    lx, ly = np.log(data.inputs), np.log(data.y)
    residual = form.log_predict(law.theta_[None, :], lx)[0] - ly
    scale = np.sqrt(np.sum(residual**2) / max(ly.size - form.n_params, 1))
    sigma = float(max(scale, MIN_NOISE)) if noise is None else float(noise)

    weights = resample_weights(ly.size, bootstrap, seed, data.groups)
    start = np.repeat(law.theta_[None, :], bootstrap, axis=0)
    current = minimize(form, lx, ly, start, loss, weights, **REFIT).theta
    now = decision.values(current)
    lo, hi = _interval(now, ci_level)
    current_width = hi - lo  # log10 N_opt for a budget: a width in decades

    expected = _refit_with_candidates(law, lx, ly, weights, current, candidates, sigma, decision, ci_level)
    flops = flops_per_param_sample * candidates[:, 0] * candidates[:, 1]
    shrinkage = current_width - expected
    table = pd.DataFrame(
        {
            "n_params": candidates[:, 0],
            "dataset_size": candidates[:, 1],
            "flops": flops,
            "current_width": current_width,
            "expected_width": expected,
            "shrinkage": shrinkage,
            "relative_shrinkage": shrinkage / current_width if current_width > 0 else np.nan,
            "score": shrinkage / flops,
        }
    )
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    point = float(decision.values(law.theta_[None, :])[0])
    warnings = [f"law: {w.replace('; pass --all-points to fit every row', '')}" for w in law.warnings_]
    undefined = int(np.sum(~np.isfinite(now)))
    if undefined:
        warnings.append(
            f"{undefined} of {bootstrap} replicas have an exponent at zero (N_opt undefined) and are left out of "
            "the interval"
        )
    if budget is not None:
        point_value, lower, upper = 10**point, 10**lo, 10**hi
    else:
        point_value, lower, upper = point, lo, hi
    current_info = {"value": point_value, "lower": lower, "upper": upper, "width": current_width}
    return Suggestions(table, decision.name, decision.unit, current_info, sigma, bootstrap, warnings)


def _refit_with_candidates(
    law: ScalingLaw,
    lx: np.ndarray,
    ly: np.ndarray,
    weights: np.ndarray,
    replicas: np.ndarray,
    candidates: np.ndarray,
    sigma: float,
    decision: _Decision,
    ci_level: float,
) -> np.ndarray:
    """Expected interval width with each candidate added to every replica; CHUNK candidates per batch.

    A batch shares one design: the observed points plus NOISE_LEVELS outcomes of each of its candidates;
    each refit weighs the resampled observed points and one outcome of its own candidate (the noise
    levels in turn across the replicas), so every problem is independent of the batch it runs in.
    """
    form, loss = law.form_, law.loss_function()
    n_boot, n_pts = weights.shape
    levels = sigma * norm.ppf((np.arange(NOISE_LEVELS) + 0.5) / NOISE_LEVELS)
    level_of = np.arange(n_boot) % NOISE_LEVELS
    widths = np.empty(len(candidates))
    for first in range(0, len(candidates), CHUNK):
        chunk = candidates[first : first + CHUNK]
        n_cand = len(chunk)
        log_cand = np.log(chunk.T)  # (2, C)
        predicted = form.log_predict(law.theta_[None, :], log_cand)[0]  # (C,)
        all_lx = np.concatenate([lx, np.repeat(log_cand, NOISE_LEVELS, axis=1)], axis=1)
        all_ly = np.concatenate([ly, (predicted[:, None] + levels[None, :]).ravel()])
        batch_w = np.zeros((n_cand, n_boot, n_pts + n_cand * NOISE_LEVELS))
        batch_w[:, :, :n_pts] = weights[None, :, :]
        for c in range(n_cand):
            batch_w[c, np.arange(n_boot), n_pts + c * NOISE_LEVELS + level_of] = 1.0
        starts = np.tile(replicas, (n_cand, 1))
        theta = minimize(form, all_lx, all_ly, starts, loss, batch_w.reshape(n_cand * n_boot, -1), **REFIT).theta
        values = decision.values(theta).reshape(n_cand, n_boot)
        for c in range(n_cand):
            lo, hi = _interval(values[c], ci_level)
            widths[first + c] = hi - lo
    return widths


def _check(
    data: FitData,
    budget: float | None,
    target: tuple[float, float] | None,
    bootstrap: int,
    seed: int,
    noise: float | None,
    k: float,
    ci_level: float,
) -> None:
    if data.inputs.shape[0] != 2:
        raise UserError(f"{data.source}: suggest needs N and D for every run")
    if (budget is None) == (target is None):
        raise UserError("suggest needs one decision: --budget C (N_opt there) or --target-n N --target-d D")
    if budget is not None and not (np.isfinite(budget) and budget > 0):
        raise UserError(f"--budget must be a finite number > 0 FLOPs, got {budget}")
    if target is not None and not all(np.isfinite(v) and v > 0 for v in target):
        raise UserError(f"--target-n and --target-d must be finite numbers > 0, got {target[0]}, {target[1]}")
    check_whole("bootstrap", bootstrap, minimum=MIN_REPLICAS, unit="refits")
    check_whole("seed", seed)
    if noise is not None and not (np.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise must be a finite number >= 0 (log-normal sigma, e.g. 0.01), got {noise}")
    check_flops_per_param_sample(k)
    check_level("ci_level", ci_level)
