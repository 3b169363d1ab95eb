"""Multi-start fitting of one form: screen every start together, then polish the best basins tightly.

Also the exact-gradient Hessian at the optimum, which the diagnostics read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import BatchResult, evaluator, minimize
from scalinglab.fit.optimize import objective as objective_of

REACHED_RTOL = 1e-3  # a start "reached" the optimum when its screened objective is this close, relatively
POLISH_STAGES = (100, 200, 400, 800, 1600, 1900)  # polish iterations per stage, 5,000 in all
SETTLED_RTOL = 1e-2  # after a stage, a basin this much worse than the best stops polishing
STALLED_RTOL = 1e-9  # ... and so does one whose objective fell by less than this, relatively, over the stage
FITTED_RTOL = 1e-2  # ... or whose fitted values (log) all moved by less than this share of its residuals' RMS
SCREEN_POINTS = 128  # a larger table screens its starts on this many of its points, spread over the inputs


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
    """Optimise from every start at once, then polish the `n_polish` best distinct end points tightly.

    On more than SCREEN_POINTS points the screen runs on SCREEN_POINTS of them (`screening_points`): a
    screen only ranks the starts' basins, which a few points spread over the inputs rank as all do, and it
    costs in proportion to starts x points. The polish, which decides the fit, uses every point.
    """
    at = screening_points(lx)
    w = None if weights is None else np.asarray(weights)[..., at]
    screened = minimize(form, lx[:, at], ly[at], starts, loss, w, max_iter=screen_iter, ftol=screen_ftol)
    on_screen = screened.objective
    if at.size < ly.size:  # the polish compares the screened basins on every point
        screened.objective = objective_of(form, screened.theta, lx, ly, loss, weights)
    order = np.argsort(screened.objective, kind="stable")
    chosen: list[int] = []
    for i in order:
        if not np.isfinite(screened.objective[i]) or len(chosen) >= n_polish:
            break
        if all(np.max(np.abs(screened.theta[i] - screened.theta[j])) > 1e-6 for j in chosen):
            chosen.append(int(i))
    if not chosen:
        raise FloatingPointError(f"form '{form.name}': no start gave a finite objective")
    polished = polish(form, lx, ly, loss, screened.theta[chosen], screened.objective[chosen], weights)
    best = int(np.argmin(polished.objective))
    objective = float(polished.objective[best])
    # a start reached the best basin when its screen ended within REACHED_RTOL of the optimum, on the screen's
    # points: the polished optimum's objective on every point, or the best screen on a subset of them
    target = objective if at.size == ly.size else float(np.min(on_screen))
    reached = int(np.sum(on_screen <= target * (1 + REACHED_RTOL) + 1e-300))
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


def screening_points(lx: np.ndarray, count: int = SCREEN_POINTS) -> np.ndarray:
    """Indices of at most `count` points spread over the inputs: every point of a small table; of a larger one,
    evenly spaced ranks of the summed log inputs (from the smallest run to the largest), each input's own
    extremes included, so the screen sees the whole range of every input."""
    n = lx.shape[1]
    if n <= count:
        return np.arange(n)
    extremes = np.concatenate([np.argmin(lx, axis=1), np.argmax(lx, axis=1)])
    order = np.argsort(lx.sum(axis=0), kind="stable")
    spread = order[np.unique(np.linspace(0, n - 1, count - extremes.size).round().astype(int))]
    return np.unique(np.concatenate([extremes, spread]))


def polish(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    starts: np.ndarray,
    start_objective: np.ndarray,
    weights: np.ndarray | None,
    groups: np.ndarray | None = None,
    stages: tuple[int, ...] = POLISH_STAGES,
) -> BatchResult:
    """Polish every basin tightly, in stages (`stages`: iterations in each); between stages, basins that
    cannot matter stop.

    A basin stops when it is clearly worse than the best of its group (one problem, e.g. one held-out fold,
    per group label in `groups`; one group when None: only the best is the fit; the others are warm starts
    for refits on subsets, which need them near their optimum, not at it) or when it has stalled: a whole
    stage lowered its objective by less than STALLED_RTOL, relatively, or moved none of its fitted values
    (log predictions at the points, held-out ones included) by more than FITTED_RTOL of the RMS of its
    residuals (1e-4 on a table with 1% noise; an exact fit's tolerance shrinks with its residuals). Both happen while
    parameters creep along a flat valley: towards a bound, or, in a form with a degenerate limit (Farseer's
    c exp(k x) + o as k -> 0), towards infinity along a direction that changes no prediction; either
    counts as converged, as with `ftol`. Without the cuts one creeping basin keeps the whole batch iterating
    (an iteration costs about the same whatever the batch size) for all 5,000 steps. `weights` is (n,) or
    one row per start, (B, n).
    """
    result: BatchResult | None = None
    active = np.arange(len(starts))
    theta = starts
    objective = np.asarray(start_objective, dtype=float)
    group = np.zeros(len(starts), int) if groups is None else np.unique(groups, return_inverse=True)[1].ravel()
    with np.errstate(all="ignore"):
        fitted = form.log_predict(np.asarray(starts, dtype=float), lx)
    for budget in stages:
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
        best = np.full(group.max() + 1, np.inf)
        np.minimum.at(best, group, result.objective)
        best = best[group]
        still, fitted[active] = _fitted_still(form, stage.theta, lx, ly, w, fitted[active])
        stalled = np.zeros(len(starts), bool)
        stalled[active] = (before - stage.objective <= STALLED_RTOL * np.abs(stage.objective)) | still
        result.converged |= stalled  # converged in the ftol sense, measured over a whole stage
        settled = result.converged | (result.objective > best + SETTLED_RTOL * np.abs(best))
        objective = result.objective
        active = np.flatnonzero(~settled)
        if active.size == 0:
            break
    return result


def _fitted_still(
    form: Form, theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, weights: np.ndarray | None, before: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which problems moved no fitted value (log) by more than FITTED_RTOL of their residuals' RMS since
    `before` (B, n), and their fitted values now."""
    with np.errstate(all="ignore"):
        now = form.log_predict(theta, lx)
        w = np.ones_like(now) if weights is None else np.broadcast_to(weights, now.shape)
        rms = np.sqrt(np.sum(w * (now - ly) ** 2, axis=-1) / np.sum(w, axis=-1))
        return np.max(np.abs(now - before), axis=1) <= FITTED_RTOL * rms, now


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
