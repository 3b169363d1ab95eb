"""The last point of each run: the one rule every analysis uses to read a run's end from its curve.

A run's last point is its row with the most steps (or samples seen, or FLOPs); on a tie, the last in table order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def last_index(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Indices of each group's last point by `order` (ties: the later index), in index order."""
    groups, order = np.asarray(groups), np.asarray(order, dtype=float)
    if groups.size == 0:
        return np.empty(0, dtype=int)
    _, group_id = np.unique(groups, return_inverse=True)
    group_id = np.asarray(group_id).ravel()
    by = np.lexsort((np.arange(groups.size), order, group_id))
    last = np.r_[group_id[by][1:] != group_id[by][:-1], True]
    return np.sort(by[last])


def last_mask(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """A mask of each group's last point by `order` (`last_index`)."""
    mask = np.zeros(np.asarray(groups).size, dtype=bool)
    mask[last_index(groups, order)] = True
    return mask


def last_rows(frame: pd.DataFrame, run: str = "run_id", order: str | np.ndarray | None = None) -> pd.DataFrame:
    """Each run's last row, in table order. `order` is a column or array (default: steps, else flops);
    a table without the run column or any order is returned as it is (every row is its own run's end)."""
    if order is None:
        order = next((name for name in ("steps", "flops") if name in frame), None)
    if run not in frame or order is None:
        return frame
    values = frame[order].to_numpy(dtype=float) if isinstance(order, str) else np.asarray(order, dtype=float)
    return frame.iloc[last_index(frame[run].astype(str).to_numpy(), values)]
