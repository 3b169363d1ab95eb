"""Bootstrap refits: resample points (or whole runs), refit every resample at once, warm-started.

Resamples become integer weights per point, so the K refits are one batched optimisation.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import minimize


def resample_weights(n_points: int, n_boot: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(K, n) counts: how often each point is drawn; with `groups`, whole groups are drawn together."""
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = rng.integers(0, n_points, size=(n_boot, n_points))
        return np.stack([np.bincount(row, minlength=n_points) for row in draws]).astype(float)
    labels, index = np.unique(groups, return_inverse=True)
    draws = rng.integers(0, labels.size, size=(n_boot, labels.size))
    group_counts = np.stack([np.bincount(row, minlength=labels.size) for row in draws])
    return group_counts[:, index].astype(float)


def bootstrap_fits(
    form: Form,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    theta_hat: np.ndarray,
    n_boot: int,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """(K, P) internal parameters refitted on K resamples, each started from `theta_hat`."""
    weights = resample_weights(ly.size, n_boot, seed, groups)
    starts = np.repeat(theta_hat[None, :], n_boot, axis=0)
    result = minimize(form, lx, ly, starts, loss, weights, max_iter=1000, ftol=1e-12)
    return result.theta
