"""Fused, compiled kernel for forms that are a log-sum-exp of affine terms (chinchilla, power laws).

One pass over the points per problem computes objective, gradient and Gauss-Newton matrix, with
problems spread over the cores. It computes exactly what `optimize._affine_evaluator` does in numpy.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

try:
    import numba
except ImportError:  # numba is a dependency; the numpy path remains for platforms without it
    numba = None
else:
    # numba's default OpenMP layer keeps its threads spinning between parallel regions; on a busy machine
    # (a study training beside the fit) the thousands of short calls of a profile walk then ran 40x slower
    # (115 s against 2.9 s for one chinchilla fit with profile intervals at a load average of 17). The
    # workqueue layer's threads sleep. A user's NUMBA_THREADING_LAYER still wins. The workqueue layer aborts the
    # process when two threads launch parallel work at once, so launches hold _LAUNCH (fits from a user's
    # thread pool take turns in the kernel, each still spread over the cores).
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"

_LAUNCH = threading.Lock()

LOSS_CODES = {"mse": 0, "huber": 1, "asymmetric": 2}


def _affine_lse_model(
    theta, pair_t, pair_p, values, ly, weights, kind, delta, over_weight, obj, grad, gn
):  # pragma: no cover
    # The features are given sparsely: pair k says term pair_t[k] has parameter pair_p[k] with values[k, :].
    n_batch, n_par = theta.shape
    n_pairs, n_pts = values.shape
    n_terms = pair_t.max() + 1
    shared = weights.shape[0] == 1
    for b in numba.prange(n_batch):
        wrow = weights[0] if shared else weights[b]
        terms = np.empty(n_terms)
        jac = np.empty(n_par)
        acc_g = np.zeros(n_par)
        acc_h = np.zeros((n_par, n_par))
        acc_obj = 0.0
        for i in range(n_pts):
            w = wrow[i]
            if w == 0.0:
                continue
            for t in range(n_terms):
                terms[t] = 0.0
            for k in range(n_pairs):
                terms[pair_t[k]] += theta[b, pair_p[k]] * values[k, i]
            top = -np.inf
            for t in range(n_terms):
                top = max(top, terms[t])
            total = 0.0
            for t in range(n_terms):
                terms[t] = math.exp(terms[t] - top)
                total += terms[t]
            r = top + math.log(total) - ly[i]
            if kind == 0:
                value, psi, curv = 0.5 * r * r, r, 1.0
            else:
                size = abs(r)
                cap = min(size, delta)
                value = cap * (size - 0.5 * cap)
                psi = min(max(r, -delta), delta)
                curv = delta / max(size, delta)
                if kind == 2 and r > 0:
                    value, psi, curv = value * over_weight, psi * over_weight, curv * over_weight
            for p in range(n_par):
                jac[p] = 0.0
            for k in range(n_pairs):
                jac[pair_p[k]] += terms[pair_t[k]] * values[k, i] / total
            acc_obj += w * value
            wpsi, wcurv = w * psi, w * curv
            for p in range(n_par):
                acc_g[p] += wpsi * jac[p]
                for q in range(p + 1):
                    acc_h[p, q] += wcurv * jac[p] * jac[q]
        obj[b] = acc_obj
        for p in range(n_par):
            grad[b, p] = acc_g[p]
            for q in range(p + 1):
                gn[b, p, q] = acc_h[p, q]
                gn[b, q, p] = acc_h[p, q]


_compiled = None


def sparse_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(term index, parameter index, values (K, n)) of the feature rows that are not all zero."""
    pair_t, pair_p = np.nonzero(np.any(features != 0, axis=2))
    return pair_t, pair_p, np.ascontiguousarray(features[pair_t, pair_p], dtype=float)


def affine_lse_model(theta, sparse, ly, weights, loss):
    """Objective (B,), gradient (B, P) and Gauss-Newton matrix (B, P, P); None when numba is missing.

    `sparse` is `sparse_features(features)` of the form's (T, P, n) features.
    """
    global _compiled
    if numba is None:
        return None
    if _compiled is None:
        _compiled = numba.njit(parallel=True, cache=True, nogil=True)(_affine_lse_model)
    n_batch, n_par = theta.shape
    obj, grad, gn = np.empty(n_batch), np.empty((n_batch, n_par)), np.empty((n_batch, n_par, n_par))
    w = np.ascontiguousarray(np.atleast_2d(weights), dtype=float)
    with _LAUNCH:
        _compiled(
            np.ascontiguousarray(theta, dtype=float),
            *sparse,
            ly,
            w,
            LOSS_CODES[loss.kind],
            float(loss.delta),
            float(loss.over_weight),
            obj,
            grad,
            gn,
        )
    return obj, grad, gn
