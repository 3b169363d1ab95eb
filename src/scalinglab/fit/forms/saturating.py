"""The saturating form of Alabdulmohsin et al. (2022), their M4:
(eps - eps_inf) / (eps_0 - eps)^alpha = beta x^-c.

The law is implicit in eps; predictions solve it by Newton's method on the logit of the excess
fraction s = (eps - eps_inf) / (eps_0 - eps_inf), and the Jacobian follows from the implicit
function theorem, so the fitter sees exact derivatives.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglab.fit.forms.base import Array, Form, Param, logsumexp, product_grid


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _solve_numpy(log_k: Array, alpha: Array, iterations: int) -> Array:
    z = np.where(log_k < 0, log_k, log_k / np.maximum(alpha, 1e-3))
    for _ in range(iterations):
        g = -_softplus(-z) + alpha * _softplus(z) - log_k
        slope = _sigmoid(-z) + alpha * _sigmoid(z)
        step = np.clip(g / np.maximum(slope, 1e-300), -20.0, 20.0)
        z = np.clip(z - step, -700.0, 700.0)
        if np.all(np.abs(step) < 1e-13 * (1.0 + np.abs(z))):
            break
    return z


def _solve_elementwise(log_k, alpha, iterations, out):  # pragma: no cover (run compiled)
    # The same Newton iteration as _solve_numpy, each element stopping on its own.
    for i in range(log_k.size):
        lk, a = log_k[i], alpha[i]
        z = lk if lk < 0 else lk / max(a, 1e-3)
        for _ in range(iterations):
            e = math.exp(-abs(z))
            sp_pos = max(z, 0.0) + math.log1p(e)  # softplus(z)
            sp_neg = sp_pos - z  # softplus(-z)
            sig = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)  # sigmoid(z)
            g = -sp_neg + a * sp_pos - lk
            slope = max((1.0 - sig) + a * sig, 1e-300)
            step = min(max(g / slope, -20.0), 20.0)
            z = min(max(z - step, -700.0), 700.0)
            if abs(step) < 1e-13 * (1.0 + abs(z)):
                break
        out[i] = z


_compiled_solve = None


def _solve(log_k: Array, alpha: Array, iterations: int = 60) -> Array:
    """z with -softplus(-z) + alpha softplus(z) = log_k (monotone in z), by safeguarded Newton.

    Compiled with numba when it is there (each element stops on its own); numpy otherwise.
    """
    global _compiled_solve
    if _compiled_solve is None:
        try:
            import numba
        except ImportError:  # numba is a dependency; the numpy path remains for platforms without it
            _compiled_solve = False
        else:
            _compiled_solve = numba.njit(cache=True, nogil=True)(_solve_elementwise)
    if _compiled_solve is False or np.iscomplexobj(log_k) or np.iscomplexobj(alpha):
        return _solve_numpy(log_k, alpha, iterations)
    log_k, alpha = np.broadcast_arrays(np.asarray(log_k, dtype=float), np.asarray(alpha, dtype=float))
    out = np.empty(log_k.shape)
    _compiled_solve(np.ascontiguousarray(log_k).ravel(), np.ascontiguousarray(alpha).ravel(), iterations, out.ravel())
    return out


def _parts(theta: Array, lx: Array):
    le, lb, alpha, lbeta, c = (theta[..., i : i + 1] for i in range(5))
    log_k = lbeta - c * lx[0] + (alpha - 1.0) * lb
    z = _solve(log_k + 0 * lx[0], alpha + 0 * lx[0])
    log_s = -_softplus(-z)
    return le, lb, alpha, z, log_s


def _log_predict(theta: Array, lx: Array) -> Array:
    le, lb, _, _, log_s = _parts(theta, lx)
    return logsumexp(le + 0 * log_s, lb + log_s)


def _jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    le, lb, alpha, z, log_s = _parts(theta, lx)
    value = logsumexp(le + 0 * log_s, lb + log_s)
    share_w = np.exp(lb + log_s - value)  # (eps - eps_inf) / eps
    slope = _sigmoid(-z) + alpha * _sigmoid(z)
    ds = _sigmoid(-z) / np.maximum(slope, 1e-300)  # d log s / d log K
    jac = np.stack(
        [
            1.0 - share_w,
            share_w * (1.0 + ds * (alpha - 1.0)),
            share_w * ds * (lb - _softplus(z)),
            share_w * ds,
            -share_w * ds * lx[0],
        ],
        axis=-1,
    )
    return value, jac


def _starts(lx: Array, ly: Array) -> Array:
    low, high = float(np.min(ly)), float(np.max(ly))
    floors = low + np.log([0.05, 0.5, 0.9])
    gaps = np.log(np.exp(high) * np.array([1.05, 2.0]) - np.exp(low) * 0.5)
    alphas = np.array([0.0, 0.5, 1.0, 2.0])
    exponents = np.array([0.1, 0.3, 0.7])
    mid = float(np.median(lx[0]))
    rows = product_grid(floors, gaps, alphas, np.zeros(1), exponents)
    rows[:, 3] = rows[:, 4] * mid  # beta x^-c is about 1 at the median x
    return rows


SATURATING = Form(
    name="m4",
    formula="(y - eps_inf) / (eps_inf + gap - y)^alpha = beta x^-c",
    inputs=("x",),
    params=(
        Param("le", -30.0, 30.0, "eps_inf", log_scale=True),
        Param("lb", -30.0, 30.0, "gap", log_scale=True),
        Param("alpha", 0.0, 10.0, "alpha"),
        Param("lbeta", -100.0, 200.0, "beta", log_scale=True),
        Param("c", 0.0, 10.0, "c"),
    ),
    log_predict=_log_predict,
    jacobian=_jacobian,
    start_grid=_starts,
    description="Alabdulmohsin et al. (2022) M4: a power law between a floor eps_inf and a ceiling eps_inf + gap.",
)
