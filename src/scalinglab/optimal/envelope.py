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


def envelope(curves: Curves, n_bins: int = 30, min_runs: int = 2) -> pd.DataFrame:
    """The best point per bin, in bins where at least `min_runs` runs have points.

    Columns: bin_flops, run_id, n_params, flops, value, (steps, samples_seen), runs_in_bin.
    """
    picks, bins, centres = _best_per_run_and_bin(curves, n_bins, min_runs)
    order = np.lexsort((curves.score[picks], bins))
    lead = order[np.r_[True, bins[order][1:] != bins[order][:-1]]] if order.size else order
    runs_in_bin = np.bincount(bins, minlength=n_bins)[bins[lead]]
    return _rows(curves, picks[lead], bins[lead], centres, runs_in_bin=runs_in_bin)


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
