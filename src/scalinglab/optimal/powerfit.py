"""Power laws y = k x^a fitted by least squares on log-log axes, with intervals from run resampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class PowerLaw:
    coefficient: float  # k
    exponent: float  # a
    samples: np.ndarray | None = None  # (K, 2) bootstrap (log k, a)

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.asarray(x, dtype=float) ** self.exponent

    def interval(self, x: float | None = None, ci_level: float = 0.95) -> tuple[float, float] | None:
        """Percentile interval of the exponent, or of the prediction at x."""
        if self.samples is None or len(self.samples) < 2:
            return None
        values = self.samples[:, 1] if x is None else np.exp(self.samples[:, 0] + self.samples[:, 1] * np.log(x))
        tail = 50 * (1 - ci_level)
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return float(lo), float(hi)


def fit_loglog(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """(log k, a) of the least-squares line through (log x, log y); None with under two distinct x."""
    lx, ly = np.log(x), np.log(y)
    if lx.size < 2 or np.ptp(lx) == 0:
        return None
    a, log_k = np.polyfit(lx, ly, 1)
    return float(log_k), float(a)


def fit_with_bootstrap(
    points: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    runs: np.ndarray,
    bootstrap: int,
    seed: int,
) -> PowerLaw | None:
    """Fit on points(all runs); refit on points(resampled runs) `bootstrap` times for the intervals.

    Resampling runs with replacement and recomputing the points from the runs drawn is the run-level
    bootstrap: a run drawn twice adds nothing to an envelope, a run not drawn is absent.
    """
    base = fit_loglog(*points(runs))
    if base is None:
        return None
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        drawn = np.unique(rng.choice(runs, size=runs.size, replace=True))
        fitted = fit_loglog(*points(drawn))
        if fitted is not None:
            samples.append(fitted)
    return PowerLaw(float(np.exp(base[0])), base[1], np.array(samples) if samples else None)
