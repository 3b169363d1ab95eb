"""A bundled example: a synthetic sweep drawn from a known Chinchilla-form law, as an observations table.

Used by the demo and by tests that need data whose true parameters are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
