"""Robust monotone smoothing of each run's training curve, so one outlying checkpoint cannot make the envelope.

Each run's score (the metric, negated when higher is better: always minimised), in order of FLOPs, is
compared with its running median of five points (three next to the ends, Tukey's extrapolation rule at
the ends), which no single checkpoint can move. A point far from it (OUTLIER_SCALES robust scales and at
least OUTLIER_MIN_GAP) is an outlying checkpoint: it is replaced by interpolation (in log FLOPs) between
its regular neighbours, and the others keep their values. Then the curve is made non-increasing by the
least-squares antitonic fit (pool adjacent violators): a run's score does not get worse with more
training in expectation, so noise that does is averaged out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from scalinglab.optimal.curves import Curves

# A checkpoint is listed as outlying when it is this many robust scales (1.4826 MAD of the run's
# deviations from its smoothed curve) and at least OUTLIER_MIN_GAP (relative) away from the smoothed curve.
OUTLIER_SCALES = 6.0
OUTLIER_MIN_GAP = 0.02


def running_median(y: np.ndarray) -> np.ndarray:
    """Median of five neighbours (three one step from the ends); the ends by Tukey's rule.

    Tukey's end-point rule: the end value becomes the median of itself, its smoothed neighbour and the
    straight-line extrapolation from the two smoothed neighbours, so a straight stretch is left alone
    and one wild end point is replaced.
    """
    n = y.size
    if n < 3:
        return y.copy()
    out = y.copy()
    for i in range(1, n - 1):
        half = 2 if 2 <= i <= n - 3 else 1
        out[i] = np.median(y[i - half : i + half + 1])
    out[0] = np.median([y[0], out[1], 2 * out[1] - out[2]])
    out[-1] = np.median([y[-1], out[-2], 2 * out[-2] - out[-3]])
    return out


def antitonic(y: np.ndarray) -> np.ndarray:
    """The non-increasing sequence closest to y in least squares (pool adjacent violators)."""
    values: list[float] = []
    sizes: list[int] = []
    for v in y:
        values.append(float(v))
        sizes.append(1)
        while len(values) > 1 and values[-2] < values[-1]:
            total = sizes[-2] + sizes[-1]
            merged = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / total
            values[-2:], sizes[-2:] = [merged], [total]
    return np.repeat(values, sizes)


def outlying(y: np.ndarray) -> np.ndarray:
    """Which points sit far from the running median: more than OUTLIER_SCALES robust scales of the run's
    relative deviations and more than OUTLIER_MIN_GAP."""
    ref = running_median(y)
    gap = np.abs(y - ref) / np.maximum(np.abs(ref), 1e-300)
    scale = 1.4826 * np.median(gap)
    return gap > max(OUTLIER_SCALES * scale, OUTLIER_MIN_GAP)


def smooth_score(score: np.ndarray, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One run's score, in order of FLOPs (x: log FLOPs, for interpolation), smoothed; and the outlying points.

    Outlying points are replaced by linear interpolation between their nearest regular neighbours (the
    nearest regular value at an end), the others keep their values; the result is then made non-increasing.
    """
    y = np.asarray(score, dtype=float)
    x = np.arange(y.size, dtype=float) if x is None else np.asarray(x, dtype=float)
    flagged = outlying(y) if y.size >= 3 else np.zeros(y.size, dtype=bool)
    regular = ~flagged
    cleaned = y.copy()
    if flagged.any() and regular.any():
        cleaned[flagged] = np.interp(x[flagged], x[regular], y[regular])
    return antitonic(cleaned), flagged


def smooth_curves(curves: Curves) -> tuple[Curves, pd.DataFrame]:
    """Curves with every run's values smoothed, and the outlying checkpoints (one row each).

    Outliers: run_id, n_params, flops, value (raw), smoothed (the curve's value there), gap (relative).
    """
    score = curves.score.astype(float)
    smoothed = score.copy()
    flagged = np.zeros(score.size, dtype=bool)
    for run in curves.runs:
        index = np.flatnonzero(curves.run == run)
        index = index[np.argsort(curves.c[index], kind="stable")]
        smoothed[index], flagged[index] = smooth_score(score[index], np.log(curves.c[index]))
    value = -smoothed if curves.higher_is_better else smoothed
    rows = np.flatnonzero(flagged)
    gap = np.abs(score[rows] - smoothed[rows]) / np.maximum(np.abs(smoothed[rows]), 1e-300)
    table = pd.DataFrame(
        {
            "run_id": curves.run[rows],
            "n_params": curves.n[rows],
            "flops": curves.c[rows],
            "value": curves.value[rows],
            "smoothed": value[rows],
            "gap": gap,
        }
    )
    return replace(curves, value=value), table
