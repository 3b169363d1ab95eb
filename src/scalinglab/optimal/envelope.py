"""The envelope of metric-vs-FLOPs curves: the best point in each log-spaced FLOPs bin across runs.

Lower envelope for losses, upper for mAP or accuracy (the curves' score is always minimised). Also
the near-optimal set: every run within a tolerance of the envelope in a bin, so smaller models that
are nearly as good are not lost to the argmin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.optimal.curves import Curves


def flops_bins(c: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every point over log-spaced edges spanning c, and the bins' geometric centres."""
    edges = np.geomspace(c.min(), c.max() * (1 + 1e-12), n_bins + 1)
    index = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, n_bins - 1)
    return index, np.sqrt(edges[:-1] * edges[1:])


def _best_per_run_and_bin(curves: Curves, n_bins: int, min_runs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of each run's best point in each bin, kept where a bin has `min_runs` runs; their bins; centres."""
    index, centres = flops_bins(curves.c, n_bins)
    _, code = np.unique(curves.run, return_inverse=True)
    key = index * (code.max() + 1) + code
    order = np.lexsort((curves.score, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    bins = index[first]
    enough = np.bincount(bins, minlength=n_bins)[bins] >= min_runs
    return first[enough], bins[enough], centres


def _rows(
    curves: Curves, picks: np.ndarray, bins: np.ndarray, centres: np.ndarray, **extra: np.ndarray
) -> pd.DataFrame:
    frame = curves.frame().iloc[picks].reset_index(drop=True)
    frame.insert(0, "bin_flops", centres[bins])
    return frame.assign(**extra)


def envelope(curves: Curves, n_bins: int = 30, min_runs: int = 2, raw_value: np.ndarray | None = None) -> pd.DataFrame:
    """The best point per bin, in bins where at least `min_runs` runs have points.

    Columns: bin_flops, run_id, n_params, flops, value, (steps, samples_seen), runs_in_bin; with
    `raw_value` (the unsmoothed value of every point of smoothed curves), also raw_value.
    """
    picks, bins, centres = _best_per_run_and_bin(curves, n_bins, min_runs)
    order = np.lexsort((curves.score[picks], bins))
    lead = order[np.r_[True, bins[order][1:] != bins[order][:-1]]] if order.size else order
    extra = {"runs_in_bin": np.bincount(bins, minlength=n_bins)[bins[lead]]}
    if raw_value is not None:
        extra["raw_value"] = raw_value[picks[lead]]
    return _rows(curves, picks[lead], bins[lead], centres, **extra)


def bin_usage(curves: Curves, n_bins: int = 30, min_runs: int = 2) -> pd.DataFrame:
    """Every FLOPs bin that has points: its centre, edges, runs and points in it, and whether the envelope uses it."""
    index, centres = flops_bins(curves.c, n_bins)
    edges = np.geomspace(curves.c.min(), curves.c.max() * (1 + 1e-12), n_bins + 1)
    _, code = np.unique(curves.run, return_inverse=True)
    points = np.bincount(index, minlength=n_bins)
    pairs = np.unique(index * (code.max() + 1) + code)
    runs = np.bincount(pairs // (code.max() + 1), minlength=n_bins)
    present = np.flatnonzero(points)
    return pd.DataFrame(
        {
            "bin_flops": centres[present],
            "flops_low": edges[present],
            "flops_high": edges[present + 1],
            "runs": runs[present],
            "points": points[present],
            "used": runs[present] >= min_runs,
        }
    )


TOP_REACH = 10**0.1  # a curve within 0.1 decades of the largest budget reaches it


def sizes_at_top(curves: Curves, reach: float = TOP_REACH) -> np.ndarray:
    """The model sizes whose curves come within `reach` (a factor) of the largest budget: where only the
    largest model does, the envelope can name no other there."""
    return np.unique(curves.n[curves.c >= float(curves.c.max()) / reach])


def near_optimal(curves: Curves, n_bins: int = 30, tolerance: float = 0.01, min_runs: int = 2) -> pd.DataFrame:
    """Every run whose best point in a bin is within `tolerance` (relative) of the envelope there."""
    picks, bins, centres = _best_per_run_and_bin(curves, n_bins, min_runs)
    score = curves.score[picks]
    top = np.full(n_bins, np.inf)
    np.minimum.at(top, bins, score)
    gap = (score - top[bins]) / np.abs(top[bins])
    keep = gap <= tolerance
    rows = _rows(curves, picks[keep], bins[keep], centres, gap=gap[keep])
    return rows.sort_values(["bin_flops", "n_params"], kind="stable").reset_index(drop=True)
