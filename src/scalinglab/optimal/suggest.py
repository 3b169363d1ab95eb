"""Which run to train next: candidates ranked by how much they are expected to narrow a decision's interval per FLOP.

The decision quantity g(theta) is N_opt at a budget C (from the fitted L(N, D) = E + A/N^alpha + B/D^beta, in
closed form) or the predicted metric at a target (N, D). Its current 95% interval comes from K run-bootstrap
refits of the law. A candidate run x = (N, D) is scored by a deterministic preposterior criterion, the
linearised (delta-method, c-optimal design) variance of g once x is added:

    V(x) = grad_g^T (J^T J / sigma^2 + j_x j_x^T / s^2)^-1 grad_g

with J the Jacobian of the log predictions at the observed runs with respect to the internal parameters, j_x
the same at x, sigma the fit's residual scale and s the new run's (the same by default). A Sherman-Morrison
rank-one update gives V(x) for every candidate at once from the current covariance. Since g is far from
linear over its interval, the ratio V(x) / V(none) is evaluated at each bootstrap replica's parameters and
averaged (a design average over the parameter draws). A run bootstrap of the runs plus the candidate draws
the candidate m ~ Binomial(n + 1, 1 / (n + 1)) times (m = 0 in about 36% of the replicas), so the expected
width is the current bootstrap width times the width ratio of the mixture over m of normals whose variance
ratios are those of m copies of x. The score is the expected shrinkage (current - expected width) per FLOP
of the candidate, k N D.

The default candidates are an N x D grid with one log step on both axes (so every iso-FLOP line through
it is on it), from the smallest observed model to 4x the largest and from half the smallest observed
data size to 4x the largest (not further below: a law fitted on the observed data sizes is least trusted
where runs repeat little data many times and overfit), less the observed pairs and the runs cheaper than
the largest candidate model on the smallest candidate data size: at every candidate's cost, the whole
range of model sizes (the largest model included) is a candidate too.

This is a preposterior estimate under the current fit: it assumes the form is right and the truth near
the fitted law; it says which run is most informative about the decision, not what the run will show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom, norm

from scalinglab.errors import UserError, check_flops_per_param_sample, check_level, check_whole
from scalinglab.fit.bootstrap import resample_weights
from scalinglab.fit.forms.base import Form
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import minimize
from scalinglab.observations import FitData
from scalinglab.optimal.parametric import allocation_coefficients

MIN_REPLICAS = 20
MIN_NOISE = 1e-4  # floor of the residual scale (log units), for fits that pass through every point
REFIT = {"max_iter": 500, "ftol": 1e-10}  # the current replicas' refits
GRID_STEP = 2.0**0.5  # default candidates: the log step on both axes
N_ABOVE = 4.0  # default candidates: model sizes up to this multiple of the largest observed
D_ABOVE = 4.0  # ... data sizes up to this multiple of the largest observed
D_BELOW = 2.0  # ... and down to the smallest observed divided by this
GRADIENT_STEP = 1e-5  # central differences of the decision quantity in the internal parameters
MAX_COPIES = 5  # a run-bootstrap resample draws the new run 0 .. MAX_COPIES times (the rest: < 0.1%)
BISECTIONS = 60  # the mixture's quantile
CHUNK = 2048  # candidates per batch of the design criterion (bounds the (replicas, candidates, P) arrays)


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


def default_axes(n: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default candidate axes: model sizes from the smallest observed to N_ABOVE x the largest, data sizes
    from the smallest observed / D_BELOW to D_ABOVE x the largest, both in steps of GRID_STEP."""
    n_lo, d_lo = float(np.min(n)), float(np.min(d)) / D_BELOW
    n_steps = int(np.ceil(np.log(N_ABOVE * np.max(n) / n_lo) / np.log(GRID_STEP) - 1e-9))
    d_steps = int(np.ceil(np.log(D_ABOVE * np.max(d) / d_lo) / np.log(GRID_STEP) - 1e-9))
    return n_lo * GRID_STEP ** np.arange(n_steps + 1), d_lo * GRID_STEP ** np.arange(d_steps + 1)


def default_candidates(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(K, 2) candidate (N, D): the `default_axes` grid, less the observed pairs and the runs cheaper than the
    largest candidate model on the smallest candidate data size, so that at every candidate's cost the
    whole range of candidate model sizes is on the grid too (one log step on both axes: iso-FLOP lines
    run through grid points)."""
    n_grid, d_grid = default_axes(n, d)
    pairs = grid_candidates(n_grid, d_grid, n, d)
    floor = np.log(n_grid[-1]) + np.log(d_grid[0]) - 1e-9
    return pairs[np.log(pairs[:, 0]) + np.log(pairs[:, 1]) >= floor]


def grid_candidates(n_grid: np.ndarray, d_grid: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The N x D grid, less the pairs already observed (to a relative 1e-9)."""
    pairs = np.array([(a, b) for a in n_grid for b in d_grid], dtype=float)
    seen = np.stack([n, d], axis=1)
    close = np.all(np.abs(np.log(pairs[:, None, :]) - np.log(seen[None, :, :])) < 1e-9, axis=2).any(axis=1)
    return pairs[~close]


NOPT_GRID = 2001  # log-N grid of the numeric N_opt
NOPT_DECADES = 10.0  # its half-width in decades around sqrt(C / k)


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
        if self.budget is not None and form.name != "chinchilla":
            return numeric_log10_n_opt(form, theta, self.budget, self.k)
        if self.budget is not None:
            params = {k: np.asarray(v, dtype=float) for k, v in form.to_public(theta).items()}
            ok = (params["alpha"] > 0) & (params["beta"] > 0)
            safe = {k: np.where(ok, v, 1.0) for k, v in params.items()}
            log_kn, a, _, _ = allocation_coefficients(safe, self.k)
            return np.where(ok, (log_kn + a * np.log(self.budget)) / np.log(10), np.nan)
        lx = np.log(np.array([[self.target[0]], [self.target[1]]], dtype=float))
        with np.errstate(over="ignore"):
            return self.law.to_metric(np.exp(form.log_predict(theta, lx)[:, 0]))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """(B, P) d value / d theta by central differences (GRADIENT_STEP in every internal parameter)."""
        n_batch, n_par = theta.shape
        step = GRADIENT_STEP * np.eye(n_par)
        shifted = np.concatenate([theta[:, None, :] + step[None], theta[:, None, :] - step[None]], axis=1)
        values = self.values(shifted.reshape(-1, n_par)).reshape(n_batch, 2, n_par)
        return (values[:, 0] - values[:, 1]) / (2 * GRADIENT_STEP)


def _interval(values: np.ndarray, ci_level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return np.nan, np.nan
    tail = 50 * (1 - ci_level)
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class _Design:
    """What the design criterion works from: the fitted law, its runs, the decision and the noise scales."""

    law: ScalingLaw
    loss: Loss  # the law's fitting loss (the replicas are refitted with it)
    data: FitData
    decision: _Decision
    sigma_fit: float  # the fit's residual scale (log units, floored at MIN_NOISE)
    sigma: float  # the candidate outcome's log-normal scale
    ci_level: float

    @property
    def lx(self) -> np.ndarray:
        """(2, n) log N and log D of the observed runs."""
        return np.log(self.data.inputs)


@dataclass(frozen=True)
class _Replicas:
    """The run-bootstrap refits of the law now: their parameters, decision values and the current interval."""

    theta: np.ndarray  # (bootstrap, P) internal parameters
    values: np.ndarray  # (bootstrap,) the decision quantity; NaN where undefined
    lower: float
    upper: float

    @property
    def width(self) -> float:
        """The current interval's width (in decades for log10 N_opt)."""
        return self.upper - self.lower

    @property
    def usable(self) -> np.ndarray:
        """The replicas' parameters where the decision quantity is defined."""
        return self.theta[np.isfinite(self.values)]


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
    chinchilla law already fitted to `data` (fitted here when not given). `bootstrap` replicas give the
    current interval and the parameter draws the design criterion is averaged over (module docstring).
    """
    _check(data, budget, target, bootstrap, seed, noise, flops_per_param_sample, ci_level)
    law = _chinchilla_law(data, law, higher_is_better, ceiling)
    loss = law.loss_function()
    candidates = _candidate_runs(data, candidates)
    decision = _Decision(law, budget, target, flops_per_param_sample)
    sigma_fit = _residual_scale(law, data)
    sigma = sigma_fit if noise is None else float(noise)
    design = _Design(law, loss, data, decision, sigma_fit, sigma, ci_level)
    replicas = _bootstrap_replicas(design, bootstrap, seed)
    expected, used = _expected_widths(design, replicas, candidates)
    table = _ranked_table(candidates, replicas.width, expected, flops_per_param_sample)
    warnings = _suggest_warnings(design, replicas, used, table)
    current = _current_summary(design, replicas)
    return Suggestions(table, decision.name, decision.unit, current, sigma, bootstrap, warnings)


def _chinchilla_law(data: FitData, law: ScalingLaw | None, higher_is_better: bool, ceiling: float) -> ScalingLaw:
    """The given law (chinchilla fitted to `data` here when None); a UserError unless it is a law in N and D."""
    if law is None:
        law = ScalingLaw(form="chinchilla", intervals=None, higher_is_better=higher_is_better, ceiling=ceiling)
        law.fit(data)
    if law.form_.inputs != ("n", "d"):
        raise UserError(f"suggest needs a law in N and D, not '{law.form_.name}' (a law in {law.form_.inputs})")
    return law


def numeric_log10_n_opt(form: Any, theta: np.ndarray, budget: float, k: float) -> np.ndarray:
    """log10 N_opt at `budget` for each row of theta, any law in N and D: the minimum of L(N, C / (k N)) over a
    log grid of N (NOPT_GRID points, +/- NOPT_DECADES around sqrt(C / k)), refined by the parabola through the
    grid minimum and its neighbours (smooth in theta, as the design's finite differences need). NaN where the
    minimum is at the grid's edge (no interior optimum)."""
    centre = 0.5 * np.log(budget / k)
    log_n = centre + np.linspace(-NOPT_DECADES, NOPT_DECADES, NOPT_GRID) * np.log(10)
    lx = np.stack([log_n, np.log(budget / k) - log_n])
    with np.errstate(all="ignore"):
        values = form.log_predict(np.atleast_2d(theta), lx)  # (B, G); log L is monotone in L
    values = np.where(np.isfinite(values), values, np.inf)
    i = np.argmin(values, axis=1)
    interior = (i > 0) & (i < NOPT_GRID - 1)
    j = np.clip(i, 1, NOPT_GRID - 2)
    rows = np.arange(values.shape[0])
    left, mid, right = values[rows, j - 1], values[rows, j], values[rows, j + 1]
    curvature = left - 2 * mid + right
    with np.errstate(all="ignore"):
        shift = np.where(curvature > 0, 0.5 * (left - right) / curvature, 0.0)
    step = log_n[1] - log_n[0]
    best = log_n[j] + np.clip(shift, -1, 1) * step
    return np.where(interior & np.isfinite(best), best / np.log(10), np.nan)


def _candidate_runs(data: FitData, candidates: np.ndarray | None) -> np.ndarray:
    """(K, 2) candidate (N, D): the given ones, or `default_candidates` of the observed runs; checked."""
    n_obs, d_obs = data.inputs
    candidates = default_candidates(n_obs, d_obs) if candidates is None else np.asarray(candidates, dtype=float)
    if candidates.ndim != 2 or candidates.shape[1] != 2 or not len(candidates):
        raise UserError("suggest: no candidate runs (every candidate on the grid is already observed)")
    if np.any(~np.isfinite(candidates) | (candidates <= 0)):
        raise UserError("suggest: candidate N and D must be finite and > 0")
    return candidates


def _residual_scale(law: ScalingLaw, data: FitData) -> float:
    """The fit's residual scale in log units (degrees of freedom corrected), floored at MIN_NOISE."""
    form = law.form_
    lx, ly = np.log(data.inputs), np.log(data.y)
    residual = form.log_predict(law.theta_[None, :], lx)[0] - ly
    scale = np.sqrt(np.sum(residual**2) / max(ly.size - form.n_params, 1))
    return float(max(scale, MIN_NOISE))


def _bootstrap_replicas(design: _Design, bootstrap: int, seed: int) -> _Replicas:
    """Refit the law on `bootstrap` run-bootstrap resamples; the decision quantity and its interval from them."""
    law, data = design.law, design.data
    ly = np.log(data.y)
    weights = resample_weights(ly.size, bootstrap, seed, data.groups)
    start = np.repeat(law.theta_[None, :], bootstrap, axis=0)
    theta = minimize(law.form_, design.lx, ly, start, design.loss, weights, **REFIT).theta
    values = design.decision.values(theta)
    lower, upper = _interval(values, design.ci_level)
    return _Replicas(theta, values, lower, upper)


def _expected_widths(design: _Design, replicas: _Replicas, candidates: np.ndarray) -> tuple[np.ndarray, int]:
    """((C,) expected interval width once each candidate is run, how many replicas the design average used)."""
    usable, data = replicas.usable, design.data
    n_runs = data.y.size if data.groups is None else np.unique(data.groups).size
    copies, chance = copy_chances(n_runs)
    ratios, used = np.ones((copies.size, len(candidates))), 0
    for i, m in enumerate(copies[1:], start=1):  # the candidate drawn m times: its noise variance / m
        if not len(usable):
            ratios[i] = np.nan
            continue
        noise = design.sigma / np.sqrt(m)
        ratios[i], used = variance_ratios(
            design.law.form_, usable, design.lx, candidates, design.decision, design.sigma_fit, noise
        )
    return replicas.width * mixture_width_ratio(ratios, chance, design.ci_level), used


def _ranked_table(candidates: np.ndarray, current_width: float, expected: np.ndarray, k: float) -> pd.DataFrame:
    """The candidates' widths, shrinkage and score (shrinkage per FLOP of k N D), ranked best first."""
    flops = k * candidates[:, 0] * candidates[:, 1]
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
    return table


def _suggest_warnings(design: _Design, replicas: _Replicas, used: int, table: pd.DataFrame) -> list[str]:
    """The law's warnings, then notes on replicas left out and on a top pick outside the observed runs."""
    warnings = [f"law: {w.replace('; pass --all-points to fit every row', '')}" for w in design.law.warnings_]
    undefined = int(np.sum(~np.isfinite(replicas.values)))
    if undefined:
        warnings.append(
            f"{undefined} of {replicas.values.size} replicas have an exponent at zero (N_opt undefined) and are left "
            "out of the interval and of the design average"
        )
    n_usable = len(replicas.usable)
    if used < n_usable:
        dropped = n_usable - used
        warnings.append(
            f"{dropped} replicas have a singular design (no finite linearised variance) and are left out of the "
            "design average"
        )
    outside = _outside_observed(table.iloc[0], np.exp(design.lx))
    if outside:
        warnings.append(outside)
    return warnings


def _current_summary(design: _Design, replicas: _Replicas) -> dict[str, float]:
    """The decision quantity now: point value, interval bounds (N_opt itself for a budget) and width."""
    point = float(design.decision.values(design.law.theta_[None, :])[0])
    lo, hi = replicas.lower, replicas.upper
    if design.decision.budget is not None:
        point_value, lower, upper = 10**point, 10**lo, 10**hi
    else:
        point_value, lower, upper = point, lo, hi
    return {"value": point_value, "lower": lower, "upper": upper, "width": replicas.width}


def _outside_observed(top: pd.Series, observed: np.ndarray) -> str | None:
    """A warning when the top-ranked run lies outside the observed model or data sizes (observed: (2, n))."""
    parts = []
    for name, value, values in (("N", top["n_params"], observed[0]), ("D", top["dataset_size"], observed[1])):
        low, high = float(values.min()), float(values.max())
        if value > high * (1 + 1e-9):
            parts.append(f"{name} {value:.3g} is {value / high:.3g}x the largest observed ({high:.3g})")
        elif value < low * (1 - 1e-9):
            parts.append(f"{name} {value:.3g} is {value / low:.3g}x the smallest observed ({low:.3g})")
    if not parts:
        return None
    return (
        f"the top pick lies outside the observed runs: {'; '.join(parts)}. Its expected shrinkage assumes the "
        "law holds there; restrict the candidates (--grid-n, --grid-d) to the runs you would trust"
    )


def copy_chances(n_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """(m = 0 .. MAX_COPIES, P(m)): how often a run-bootstrap resample of n_runs + 1 runs draws the new one,
    Binomial(n_runs + 1, 1 / (n_runs + 1)), renormalised over the m kept."""
    copies = np.arange(MAX_COPIES + 1)
    chance = binom.pmf(copies, n_runs + 1, 1.0 / (n_runs + 1))
    return copies, chance / chance.sum()


def mixture_width_ratio(ratios: np.ndarray, chance: np.ndarray, level: float) -> np.ndarray:
    """(C,) central `level` interval width of the mixture sum_m chance_m N(0, ratios[m]) over that of N(0, 1).

    ratios (M, C): variance ratios per component and candidate. The mixture's quantile q solves
    sum_m chance_m (2 Phi(q / sqrt(ratios_m)) - 1) = level (bisection); the result is q / Phi^-1((1 + level) / 2).
    NaN where a ratio is not finite.
    """
    scale = np.sqrt(np.clip(ratios, 1e-300, None))
    z = norm.ppf(0.5 + level / 2)
    lo, hi = np.zeros(ratios.shape[1]), np.full(ratios.shape[1], z * max(float(np.nanmax(scale, initial=1.0)), 1.0))
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        inside = np.sum(chance[:, None] * (2 * norm.cdf(mid / scale) - 1), axis=0)
        lo, hi = np.where(inside < level, mid, lo), np.where(inside < level, hi, mid)
    out = 0.5 * (lo + hi) / z
    return np.where(np.all(np.isfinite(ratios), axis=0), out, np.nan)


def added_point_variance(cov: np.ndarray, grad: np.ndarray, jac: np.ndarray, noise_var: float) -> np.ndarray:
    """Linearised variance of g after adding one point, for many points at once (Sherman-Morrison).

    cov (B, P, P): the parameters' covariance now, (J^T J / sigma^2)^-1; grad (B, P): d g / d theta; jac
    (B, C, P): d log prediction / d theta at C new points; noise_var: a new point's variance (log units).
    Returns (B, C) grad^T (cov^-1 + j j^T / noise_var)^-1 grad
    = grad^T cov grad - (grad^T cov j)^2 / (noise_var + j^T cov j).
    """
    u = np.einsum("bpq,bq->bp", cov, grad)
    now = np.einsum("bp,bp->b", grad, u)
    along = np.einsum("bcp,bp->bc", jac, u)
    spread = np.einsum("bcp,bpq,bcq->bc", jac, cov, jac)
    return now[:, None] - along**2 / (noise_var + spread)


def variance_ratios(
    form: Form,
    draws: np.ndarray,
    lx: np.ndarray,
    candidates: np.ndarray,
    decision: _Decision,
    sigma: float,
    noise: float,
) -> tuple[np.ndarray, int]:
    """(mean over the usable draws of V(x) / V(none) per candidate (C,), how many draws were usable).

    At each parameter draw theta_b (B, P): the covariance sigma^2 (J^T J)^-1 of the observed design
    (free parameters only), the decision's gradient, and `added_point_variance` with a new point of
    log-normal scale `noise`. A draw whose covariance or variance is not finite and positive is left out.
    """
    free = form.free
    jac_obs = form.value_and_jacobian(draws, lx)[1][:, :, free]
    info = np.einsum("bnp,bnq->bpq", jac_obs, jac_obs) / sigma**2
    with np.errstate(all="ignore"):
        cov = np.linalg.pinv(info, hermitian=True)
        grad = decision.gradient(draws)[:, free]
        now = np.einsum("bp,bpq,bq->b", grad, cov, grad)
    ok = np.isfinite(now) & (now > 0) & np.all(np.isfinite(cov), axis=(1, 2))
    if not ok.any():
        return np.full(len(candidates), np.nan), 0
    draws, cov, grad, now = draws[ok], cov[ok], grad[ok], now[ok]
    ratio = np.empty(len(candidates))
    for first in range(0, len(candidates), CHUNK):
        chunk = candidates[first : first + CHUNK]
        jac = form.value_and_jacobian(draws, np.log(chunk.T))[1][:, :, free]
        with np.errstate(all="ignore"):
            after = added_point_variance(cov, grad, jac, noise**2)
        ratio[first : first + len(chunk)] = np.mean(np.clip(after / now[:, None], 0.0, 1.0), axis=0)
    return ratio, int(ok.sum())


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
