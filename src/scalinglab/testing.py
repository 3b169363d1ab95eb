"""Synthetic sweeps drawn from known laws, as observations tables: for tests and benchmarks that need data
whose true parameters are known; and the finite-difference check every form's Jacobian must pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from scalinglab.fit.forms.base import Form

TRUE_PARAMS = {"E": 1.8, "A": 450.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
MODEL_SIZES = np.geomspace(1e7, 3.2e9, 7)
DATA_SIZES = np.geomspace(2e8, 2e11, 6)


def chinchilla_loss(n: np.ndarray, d: np.ndarray, params: dict[str, float] = TRUE_PARAMS) -> np.ndarray:
    return params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]


def example_observations(seed: int = 0, noise: float = 0.01, batch_size: int = 256) -> pd.DataFrame:
    """One eval-loss row per (N, D) cell, with multiplicative log-normal noise of `noise` (sigma)."""
    rng = np.random.default_rng(seed)
    n, d = (a.ravel() for a in np.meshgrid(MODEL_SIZES, DATA_SIZES, indexing="ij"))
    loss = chinchilla_loss(n, d) * np.exp(rng.normal(0.0, noise, n.size))
    return pd.DataFrame(
        {
            "run_id": [f"n{i // DATA_SIZES.size}-d{i % DATA_SIZES.size}" for i in range(n.size)],
            "n_params": n,
            "dataset_size": d,
            "samples_seen": d,
            "steps": np.ceil(d / batch_size),
            "flops": 6.0 * n * d,
            "metric": "loss",
            "split": "eval",
            "value": loss,
        }
    )


def example_curves(
    params: dict[str, float] = TRUE_PARAMS,
    model_sizes: np.ndarray | None = None,
    run_lengths: tuple[float, ...] = (0.25, 1.0),
    points_per_run: int = 40,
    noise: float = 0.0,
    batch_size: int = 256,
    seed: int = 0,
) -> pd.DataFrame:
    """Training curves: each run's loss is L(N, D_seen) at log-spaced points up to its final D.

    Runs of every size train to a common compute range (final D proportional to 1/N, times each
    `run_lengths` factor), so curves overlap in FLOPs as in a real sweep.
    """
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(2e7, 2e9, 15) if model_sizes is None else np.asarray(model_sizes, dtype=float)
    top_flops = 6.0 * sizes.max() * 4e10
    frames = []
    for n in sizes:
        for length in run_lengths:
            final_d = length * top_flops / (6.0 * n)
            d = np.geomspace(final_d / 1e3, final_d, points_per_run)
            loss = chinchilla_loss(n, d, params) * np.exp(rng.normal(0.0, noise, d.size))
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": f"n{n:.3g}-x{length:g}",
                        "n_params": n,
                        "dataset_size": final_d,
                        "samples_seen": d,
                        "steps": d / batch_size,
                        "flops": 6.0 * n * d,
                        "metric": "loss",
                        "split": "train",
                        "value": loss,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def assert_jacobian_matches_central_differences(form: Form, theta: np.ndarray, lx: np.ndarray, h: float = 1e-6) -> None:
    """Assert that `form`'s analytic value and Jacobian at `theta` (starts x params) match its log-prediction and
    central differences of it, step `h` (truncation error O(h^2), so rtol 1e-5 leaves room for rounding)."""
    value, jac = form.value_and_jacobian(theta, lx)
    np.testing.assert_allclose(value, form.log_predict(theta, lx), rtol=1e-12, atol=1e-12)
    for k in range(form.n_params):
        up, down = theta.copy(), theta.copy()
        up[:, k] += h
        down[:, k] -= h
        numeric = (form.log_predict(up, lx) - form.log_predict(down, lx)) / (2 * h)
        np.testing.assert_allclose(jac[..., k], numeric, rtol=1e-5, atol=1e-6, err_msg=f"{form.name} column {k}")
