"""A loss-curve law that reads the learning-rate schedule (Tissue et al. 2024, arXiv 2408.11029).

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)

`S1(s)`, the forward area, is the learning rate summed over the first s optimiser steps; `S2(s)`, the annealing
area, is the sum over those steps of a momentum of the rate's drops, m_i = lambda * m_(i-1) + (eta_(i-1) -
eta_i), so a drop keeps lowering the loss for a while after it (lambda = 0.999, the paper's value, by default).
Warmup is not annealing: the drops are counted from the end of the warmup steps on (a choice of this module;
the paper fits runs whose warmup is short next to their length). One law, fitted on every checkpoint of one or
more runs of a model (any schedule, any length), predicts the whole curve of a run under another schedule or
length, its final point included; the cosine run's mid-schedule checkpoint and the constant-rate run are both
read for what they are.

The fit: for each alpha on a grid, L0, A and C >= 0 are a non-negative least-squares problem
(`scipy.optimize.nnls`); the best is polished with every parameter free within its bounds
(`scipy.optimize.least_squares`, analytic Jacobian). Intervals are the delta method on that Jacobian with the
residual scale: the checkpoints of one run are not independent draws, so they are narrower than a refit on
new runs would show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, signal, stats

from scalinglab.errors import UserError

DECAY = 0.999  # lambda, the momentum of the annealing area (Tissue et al. 2024)
NAMES = ("L0", "A", "alpha", "C")
ALPHA_GRID = np.geomspace(0.01, 3.0, 80)
LOWER = np.array([0.0, 0.0, 1e-4, 0.0])
UPPER = np.array([np.inf, np.inf, 10.0, np.inf])


def lr_areas(lrs: np.ndarray, decay: float = DECAY, warmup: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after each optimiser step: `lrs[i]` is the learning rate of step i + 1; entry i of each result
    is the area after step i + 1. The drops of the first `warmup` steps are not counted."""
    lrs = np.asarray(lrs, dtype=float)
    if lrs.ndim != 1 or lrs.size == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
        raise UserError("learning rates must be a non-empty list of finite numbers >= 0, one per step")
    if not 0 <= decay < 1:
        raise UserError(f"the annealing momentum (decay) must be in [0, 1), got {decay}")
    drops = np.concatenate([[0.0], lrs[:-1] - lrs[1:]])
    drops[: min(warmup, drops.size)] = 0.0
    momentum = signal.lfilter([1.0], [1.0, -decay], drops)  # m_i = decay * m_(i-1) + drop_i
    return np.cumsum(lrs), np.cumsum(momentum)


@dataclass(frozen=True)
class Curve:
    """One run's curve: the metric at optimiser steps `steps` (1-based counts) under the per-step rates `lrs`
    (the rate of step 1 first, at least up to the last step read)."""

    steps: np.ndarray
    values: np.ndarray
    lrs: np.ndarray
    warmup: int = 0

    def areas(self, decay: float = DECAY) -> tuple[np.ndarray, np.ndarray]:
        """S1 and S2 at this curve's steps."""
        steps = np.asarray(self.steps, dtype=int)
        if steps.size == 0 or steps.min() < 1 or steps.max() > len(self.lrs):
            raise UserError(f"curve steps must lie in 1..{len(self.lrs)} (one learning rate per step is given)")
        s1, s2 = lr_areas(self.lrs, decay, self.warmup)
        if np.any(s1[steps - 1] <= 0):
            raise UserError("the learning rate sums to 0 at a curve step: S1 must be > 0 where the law is read")
        return s1[steps - 1], s2[steps - 1]


def predict_areas(theta: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """L0 + A S1^-alpha - C S2."""
    l0, a, alpha, c = theta
    return l0 + a * s1**-alpha - c * s2


def _jacobian(theta: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    _, a, alpha, _ = theta
    power = s1**-alpha
    return np.column_stack([np.ones_like(s1), power, -a * power * np.log(s1), -s2])


def _grid_start(s1: np.ndarray, s2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The best (L0, A, alpha, C) over the alpha grid, L0, A and C >= 0 solved exactly at each alpha."""
    best, start = np.inf, None
    for alpha in ALPHA_GRID:
        design = np.column_stack([np.ones_like(s1), s1**-alpha, -s2])
        coef, norm = optimize.nnls(design, y)
        if norm < best:
            best, start = norm, np.array([coef[0], coef[1], alpha, coef[2]])
    return start


class ScheduleLaw:
    """L(s) = L0 + A S1^-alpha - C S2, fitted on the checkpoints of one or more curves of one model."""

    def __init__(self, decay: float = DECAY, ci_level: float = 0.95) -> None:
        if not 0 < ci_level < 1:
            raise UserError(f"ci_level must be in (0, 1), got {ci_level}")
        self.decay, self.ci_level = decay, ci_level

    def fit(self, curves: Sequence[Curve]) -> ScheduleLaw:
        areas = [c.areas(self.decay) for c in curves]
        s1 = np.concatenate([a[0] for a in areas])
        s2 = np.concatenate([a[1] for a in areas])
        y = np.concatenate([np.asarray(c.values, dtype=float) for c in curves])
        if y.size < len(NAMES) + 1 or not np.all(np.isfinite(y)):
            raise UserError(f"a schedule-aware law needs at least {len(NAMES) + 1} finite points, got {y.size}")
        start = np.clip(_grid_start(s1, s2, y), LOWER, np.minimum(UPPER, 1e300))
        start[2] = np.clip(start[2], LOWER[2] * 1.01, UPPER[2] * 0.99)
        result = optimize.least_squares(
            lambda t: predict_areas(t, s1, s2) - y,
            start,
            jac=lambda t: _jacobian(t, s1, s2),
            bounds=(LOWER, UPPER),
            x_scale="jac",
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
        )
        self.theta_ = result.x
        self.params_ = dict(zip(NAMES, map(float, result.x), strict=True))
        self.n_points_ = int(y.size)
        self.residual_scale_ = float(np.sqrt(np.sum(result.fun**2) / max(y.size - len(NAMES), 1)))
        # at a bound: where the solver's constrained optimum holds the bound active (trf iterates stay strictly
        # inside, so an L0 of 1e-33 against a bound of 0 is active there, not free)
        active = np.asarray(result.active_mask) != 0
        self.at_bounds_ = [n for n, v, lo, a in zip(NAMES, result.x, LOWER, active, strict=True) if a or v <= lo]
        jac = _jacobian(result.x, s1, s2)
        self.cov_ = self.residual_scale_**2 * np.linalg.pinv(jac.T @ jac)
        z = stats.t.ppf(0.5 + self.ci_level / 2, max(y.size - len(NAMES), 1))
        se = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        self.ci_ = {n: (float(v - z * e), float(v + z * e)) for n, v, e in zip(NAMES, result.x, se, strict=True)}
        self._z = float(z)
        return self

    def predict(
        self, steps: np.ndarray, lrs: np.ndarray, warmup: int = 0, return_ci: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The metric at optimiser steps `steps` of a run under the per-step rates `lrs`; with `return_ci`, the
        `ci_level` interval of the law's value there (parameter uncertainty, delta method)."""
        s1, s2 = Curve(np.asarray(steps), np.zeros(np.size(steps)), np.asarray(lrs), warmup).areas(self.decay)
        point = predict_areas(self.theta_, s1, s2)
        if not return_ci:
            return point
        grad = _jacobian(self.theta_, s1, s2)
        half = self._z * np.sqrt(np.clip(np.einsum("ij,jk,ik->i", grad, self.cov_, grad), 0, None))
        return point, point - half, point + half
