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


def example_trials(
    lr_law: tuple[float, float, float] = (3.0, -0.25, 0.05),
    curvature: float = 0.02,
    batch_law: tuple[float, float, float] | None = None,
    batch_curvature: float = 0.01,
    lr_steps: int = 7,
    batch_sizes: tuple[int, ...] = (256,),
    seeds: tuple[int, ...] = (0,),
    noise: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """One final eval-loss row per trial: L(N, D) + curvature (ln lr - ln lr*)^2 (+ the same in batch size).

    The optimal learning rate is lr* = k N^a D^b (`lr_law` = (k, a, b)); each cell tries `lr_steps` rates a
    factor 2 apart around lr*, the grid shifted off it by a random fraction of a step, so the optimum is
    never a grid point. With `batch_law` the optimal batch size is k N^a D^b too, on the `batch_sizes` grid.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in MODEL_SIZES[:5]:
        for d in DATA_SIZES[:5]:
            best_lr = lr_law[0] * n ** lr_law[1] * d ** lr_law[2]
            offset = rng.uniform(-0.5, 0.5)
            lrs = best_lr * 2.0 ** (np.arange(lr_steps) - (lr_steps - 1) / 2 + offset)
            best_b = batch_law[0] * n ** batch_law[1] * d ** batch_law[2] if batch_law else None
            for lr in lrs:
                for b in batch_sizes:
                    extra = 0.0 if best_b is None else batch_curvature * np.log(b / best_b) ** 2
                    for s in seeds:
                        loss = chinchilla_loss(n, d) + curvature * np.log(lr / best_lr) ** 2 + extra
                        rows.append(
                            {
                                "run_id": f"n{n:.3g}-d{d:.3g}-lr{lr:.4g}-b{b}-s{s}",
                                "n_params": n,
                                "dataset_size": d,
                                "samples_seen": d,
                                "steps": np.ceil(d / b),
                                "flops": 6.0 * n * d,
                                "metric": "loss",
                                "split": "eval",
                                "value": loss * np.exp(rng.normal(0.0, noise)) if noise else loss,
                                "lr": lr,
                                "batch_size": b,
                                "seed": s,
                            }
                        )
    return pd.DataFrame(rows)
