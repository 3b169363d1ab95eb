"""The vectorised multi-start optimiser: every start (or bootstrap resample) is solved at once.

Each problem is a weighted sum of per-point losses on log residuals. Steps are Levenberg-Marquardt
steps on the IRLS Gauss-Newton model, with exact gradients, projected onto the parameter bounds;
each problem keeps its own damping and stops on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalinglab.fit import kernels
from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss


@dataclass
class BatchResult:
    """The end point of every problem in a batch."""

    theta: np.ndarray  # (B, P)
    objective: np.ndarray  # (B,)
    converged: np.ndarray  # (B,) bool
    iterations: np.ndarray  # (B,) int
    gradient: np.ndarray  # (B, P), projected onto the feasible directions


def objective(
    form: Form, theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, loss: Loss, weights: np.ndarray | None = None
) -> np.ndarray:
    """The summed weighted loss for each row of theta (B, P)."""
    r = form.log_predict(np.atleast_2d(theta), lx) - ly
    per_point = loss.evaluate(r, derivatives=False)[0]
    return np.sum(per_point if weights is None else weights * per_point, axis=-1)


def evaluator(form: Form, lx: np.ndarray, ly: np.ndarray, loss: Loss, compiled: bool = True):
    """A function (theta (B, P), weights (B, n) or (n,)) -> objective, gradient, Gauss-Newton matrix.

    Affine log-sum-exp forms use the fused compiled kernel when numba is there (and `compiled`).
    """
    if form.features is not None:
        features = np.ascontiguousarray(form.features(lx), dtype=float)
        if compiled and kernels.numba is not None:
            ly_c = np.ascontiguousarray(ly, dtype=float)
            sparse = kernels.sparse_features(features)
            return lambda theta, weights: kernels.affine_lse_model(theta, sparse, ly_c, weights, loss)
        return _affine_evaluator(features, ly, loss)

    def evaluate(theta: np.ndarray, weights: np.ndarray):
        value, jac = form.value_and_jacobian(theta, lx)
        lvalue, psi, curv = loss.evaluate(value - ly)
        grad = np.einsum("bn,bnp->bp", weights * psi, jac)
        weighted = jac * (weights * curv)[..., None]
        return np.sum(weights * lvalue, axis=-1), grad, np.matmul(weighted.transpose(0, 2, 1), jac)

    return evaluate


def _affine_evaluator(features: np.ndarray, ly: np.ndarray, loss: Loss):
    """The same for a log-sum-exp of affine terms, assembled with matrix products (no (B, n, P) arrays)."""
    n_terms, n_par, n_pts = features.shape
    outer = {}
    for t in range(n_terms):
        for s in range(t, n_terms):
            pair = features[t][:, None, :] * features[s][None, :, :]
            if s != t:
                pair = pair + pair.transpose(1, 0, 2)
            outer[t, s] = pair.reshape(n_par * n_par, n_pts).T
    feats_t = [np.ascontiguousarray(features[t].T) for t in range(n_terms)]

    def evaluate(theta: np.ndarray, weights: np.ndarray):
        terms = np.stack([theta @ features[t] for t in range(n_terms)])
        shift = terms.max(axis=0)
        share = np.exp(terms - shift)
        total = share.sum(axis=0)
        share /= total
        lvalue, psi, curv = loss.evaluate(shift + np.log(total) - ly)
        u, c = weights * psi, weights * curv
        grad = sum((u * share[t]) @ feats_t[t] for t in range(n_terms))
        gn = sum((c * share[t] * share[s]) @ m for (t, s), m in outer.items())
        return np.sum(weights * lvalue, axis=-1), grad, gn.reshape(-1, n_par, n_par)

    return evaluate


def _checked(result):
    """Mark non-finite evaluations as infinitely bad, so they are never accepted."""
    obj, grad, gn = result
    finite = np.isfinite(obj) & np.all(np.isfinite(grad), axis=-1) & np.all(np.isfinite(gn), axis=(-1, -2))
    return np.where(finite, obj, np.inf), np.where(finite[:, None], grad, 0.0), np.where(finite[:, None, None], gn, 0.0)


def _projected(grad: np.ndarray, theta: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The gradient with components that point out of the box (at an active bound) zeroed."""
    at_lower = (theta <= lower) & (grad > 0)
    at_upper = (theta >= upper) & (grad < 0)
    return np.where(at_lower | at_upper, 0.0, grad)


def minimize(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    theta0: np.ndarray,
    loss: Loss,
    weights: np.ndarray | None = None,
    max_iter: int = 500,
    ftol: float = 1e-15,
    gtol: float = 1e-12,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> BatchResult:
    """Minimise sum_i w_i loss(log_predict(theta, lx)_i - ly_i) from every row of theta0 at once.

    `weights` is (n,) shared by all problems or (B, n), one row per problem (bootstrap counts).
    A problem stops when its projected gradient is below `gtol` relative to its objective, when
    an accepted step lowers the objective by less than `ftol` relative, or when no step helps.
    `bounds` (lower, upper) replaces the form's box, e.g. to pin a parameter (lower == upper there).
    """
    lower, upper = (form.lower, form.upper) if bounds is None else (np.asarray(b, dtype=float) for b in bounds)
    with np.errstate(all="ignore"):  # non-finite trials are expected far from the optimum; _checked rejects them
        return _minimize(form, lx, ly, theta0, loss, weights, max_iter, ftol, gtol, lower, upper)


def _minimize(form, lx, ly, theta0, loss, weights, max_iter, ftol, gtol, lower, upper) -> BatchResult:
    theta = np.array(theta0, dtype=float, copy=True)
    n_batch, n_par = theta.shape
    lower, upper = np.broadcast_to(lower, theta.shape), np.broadcast_to(upper, theta.shape)
    theta = np.clip(theta, lower, upper)
    free = (upper > lower).astype(float)  # pinned parameters (lower == upper) take no step
    any_pinned = not free.all()
    w = np.ones_like(ly) if weights is None else np.asarray(weights, dtype=float)
    shared = w.ndim == 1
    evaluate = evaluator(form, lx, ly, loss)
    obj, grad, gn = _checked(evaluate(theta, w))
    damping = np.full(n_batch, 1e-3)
    converged = np.zeros(n_batch, bool)
    iterations = np.zeros(n_batch, int)
    eye = np.eye(n_par)
    for _ in range(max_iter):
        active = np.flatnonzero(~converged)
        if active.size == 0:
            break
        iterations[active] += 1
        g_act, gn_act = grad[active], gn[active]
        if any_pinned:  # zero the pinned rows and columns, so the step solves for the free parameters only
            keep = free[active]
            g_act = g_act * keep
            gn_act = gn_act * keep[:, :, None] * keep[:, None, :] + (1.0 - keep)[:, :, None] * eye
        diag = np.einsum("bpp->bp", gn_act)
        scale = diag + 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300
        system = gn_act + damping[active, None, None] * scale[:, :, None] * eye
        try:
            step = np.linalg.solve(system, -g_act[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(s, -g, rcond=None)[0] for s, g in zip(system, g_act, strict=True)])
        trial = np.clip(theta[active] + step, lower[active], upper[active])
        t_obj, t_grad, t_gn = _checked(evaluate(trial, w if shared else w[active]))
        better = t_obj < obj[active]
        gain = np.where(better, obj[active] - t_obj, 0.0)
        moved = np.any(trial != theta[active], axis=1)

        ok = active[better]
        theta[ok], obj[ok], grad[ok], gn[ok] = trial[better], t_obj[better], t_grad[better], t_gn[better]
        damping[ok] = np.maximum(damping[ok] / 3.0, 1e-12)
        bad = active[~better]
        damping[bad] *= 4.0

        pgrad = _projected(grad[active], theta[active], lower[active], upper[active])
        flat = better & (gain <= ftol * np.maximum(obj[active], 1e-300))
        stationary = np.linalg.norm(pgrad, axis=1) <= gtol * np.maximum(obj[active], 1e-300)
        stuck = (~better & (damping[active] > 1e16)) | ~moved
        converged[active] = flat | stationary | stuck | ~np.isfinite(obj[active])
    pgrad = _projected(grad, theta, lower, upper)
    return BatchResult(theta=theta, objective=obj, converged=converged, iterations=iterations, gradient=pgrad)


def minimize_pinned(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    starts: np.ndarray,
    index: np.ndarray,
    values: np.ndarray,
    **tolerances: float,
) -> BatchResult:
    """Refit each row of `starts` with parameter `index[k]` pinned at `values[k]` and the others free.

    The profile intervals and the bound check both ask this: how good is the best fit with one parameter held.
    """
    rows = np.arange(len(values))
    lower = np.tile(form.lower, (len(values), 1))
    upper = np.tile(form.upper, (len(values), 1))
    lower[rows, index] = upper[rows, index] = values
    return minimize(form, lx, ly, np.clip(starts, lower, upper), loss, bounds=(lower, upper), **tolerances)
