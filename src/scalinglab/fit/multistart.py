"""Multi-start fitting of one form: screen every start together, then polish the best basins tightly.

Also the exact-gradient Hessian at the optimum, which the diagnostics read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import BatchResult, evaluator, minimize

REACHED_RTOL = 1e-3  # a start "reached" the optimum when its screened objective is this close, relatively
POLISH_STAGES = (100, 400, 4500)  # polish iterations per stage, 5,000 in all
SETTLED_RTOL = 1e-2  # after a stage, a basin this much worse than the best stops polishing
STALLED_RTOL = 1e-9  # ... and so does one whose objective fell by less than this, relatively, over the stage


@dataclass
class MultiStartResult:
    theta: np.ndarray  # (P,) best internal parameters
    objective: float
    n_starts: int
    n_reached: int  # starts whose screened objective is within REACHED_RTOL of the best
    converged: bool
    gradient_norm: float
    iterations: int  # total start-iterations spent
    basins: np.ndarray  # (K, P) the polished end points, best first: warm starts for refits on subsets


def fit_multistart(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    starts: np.ndarray,
    weights: np.ndarray | None = None,
    screen_iter: int = 20,
    screen_ftol: float = 1e-8,
    n_polish: int = 16,
) -> MultiStartResult:
    """Optimise from every start at once, then polish the `n_polish` best distinct end points tightly."""
    screened = minimize(form, lx, ly, starts, loss, weights, max_iter=screen_iter, ftol=screen_ftol)
    order = np.argsort(screened.objective, kind="stable")
    chosen: list[int] = []
    for i in order:
        if not np.isfinite(screened.objective[i]) or len(chosen) >= n_polish:
            break
        if all(np.max(np.abs(screened.theta[i] - screened.theta[j])) > 1e-6 for j in chosen):
            chosen.append(int(i))
    if not chosen:
        raise FloatingPointError(f"form '{form.name}': no start gave a finite objective")
    polished = _polish(form, lx, ly, loss, screened.theta[chosen], screened.objective[chosen], weights)
    best = int(np.argmin(polished.objective))
    objective = float(polished.objective[best])
    reached = int(np.sum(screened.objective <= objective * (1 + REACHED_RTOL) + 1e-300))
    return MultiStartResult(
        theta=polished.theta[best],
        objective=objective,
        n_starts=len(starts),
        n_reached=max(reached, 1),
        converged=bool(polished.converged[best]),
        gradient_norm=float(np.linalg.norm(polished.gradient[best])),
        iterations=int(screened.iterations.sum() + polished.iterations.sum()),
        basins=polished.theta[np.argsort(polished.objective, kind="stable")],
    )


def _polish(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    starts: np.ndarray,
    start_objective: np.ndarray,
    weights: np.ndarray | None,
) -> BatchResult:
    """Polish every basin tightly, in stages; between stages, basins that cannot matter stop.

    A basin stops when it is clearly worse than the best (only the best is the fit; the others are warm
    starts for refits on subsets, which need them near their optimum, not at it) or when it has stalled:
    a whole stage lowered its objective by less than STALLED_RTOL, relatively, as happens while a
    parameter creeps along a flat valley towards a bound (this counts as converged, as with `ftol`).
    Without the cuts one creeping basin keeps the whole batch iterating (an iteration costs about the
    same whatever the batch size) for all 5,000 steps.
    """
    result: BatchResult | None = None
    active = np.arange(len(starts))
    theta = starts
    objective = np.asarray(start_objective, dtype=float)
    for budget in POLISH_STAGES:
        before = objective[active]
        w = weights if weights is None or np.ndim(weights) == 1 else weights[active]
        stage = minimize(form, lx, ly, theta[active], loss, w, max_iter=budget, ftol=1e-15, gtol=1e-13)
        if result is None:
            result = stage
        else:
            result.theta[active] = stage.theta
            result.objective[active] = stage.objective
            result.converged[active] = stage.converged
            result.iterations[active] += stage.iterations
            result.gradient[active] = stage.gradient
        theta = result.theta
        best = np.min(result.objective)
        stalled = np.zeros(len(starts), bool)
        stalled[active] = before - stage.objective <= STALLED_RTOL * np.abs(stage.objective)
        result.converged |= stalled  # converged in the ftol sense, measured over a whole stage
        settled = result.converged | (result.objective > best + SETTLED_RTOL * abs(best))
        objective = result.objective
        active = np.flatnonzero(~settled)
        if active.size == 0:
            break
    return result


def hessian(
    form: Form, theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, loss: Loss, step: float = 1e-5
) -> np.ndarray:
    """The objective's Hessian at theta, by central differences of the exact gradient."""
    evaluate = evaluator(form, lx, ly, loss)
    n_par = theta.size
    shifts = np.concatenate([np.eye(n_par), -np.eye(n_par)]) * step
    grads = evaluate(theta[None, :] + shifts, np.ones_like(ly))[1]
    hess = (grads[:n_par] - grads[n_par:]) / (2 * step)
    return 0.5 * (hess + hess.T)
