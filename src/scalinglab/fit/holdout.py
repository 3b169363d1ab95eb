"""Which points a backtest or an extrapolation score holds out: the largest scales, whole model sizes, or a
column rule. Ties at the boundary are held out together, so the split never depends on row order."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations import FitData

_COLUMN_RULE = re.compile(r"^\s*(?P<column>[^<>=]+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[^<>=]+)\s*$")


def holdout_mask(spec: str, data: FitData, table: pd.DataFrame | None = None) -> np.ndarray:
    """Which points are held out: `largest:K`, `frac:F` (the largest by scale), `largest-n:K` (every point of
    the K largest model sizes) or `COLUMN>VALUE`.

    The scale of a point is the product of its inputs (N D for a law in N and D, x for one variable);
    ties at the boundary are held out together, so the split never depends on row order.
    A `COLUMN>VALUE` rule reads the column from `table`, at the rows the points were selected from.
    """
    n = data.n_points
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("largest", "frac"):
        scale = np.prod(data.inputs, axis=0)
        try:
            count = int(arg) if kind == "largest" else math.ceil(float(arg) * n)
        except ValueError:
            raise UserError(f"--holdout {spec}: '{arg}' is not a number") from None
        if kind == "frac" and not 0 < float(arg) < 1:
            raise UserError(f"--holdout {spec}: the fraction must be between 0 and 1")
        if not 1 <= count < n:
            raise UserError(f"--holdout {spec}: holds out {count} of {n} points; keep at least one and hold out one")
        threshold = np.sort(scale)[n - count]
        return scale >= threshold
    if sep and kind == "largest-n":  # whole model sizes: every point of the K largest N
        return _largest_sizes(spec, arg, data)
    match = _COLUMN_RULE.match(spec)
    if match is None:
        raise UserError(f"--holdout '{spec}': use largest:K, largest-n:K, frac:F or COLUMN>VALUE (also >=, <, <=)")
    column, op, value = match["column"], match["op"], match["value"]
    if table is None or column not in table.columns:
        raise UserError(f"--holdout '{spec}': no column '{column}'")
    try:
        threshold = float(value)
    except ValueError:
        raise UserError(f"--holdout '{spec}': '{value}' is not a number") from None
    picked = table[column] if data.rows is None else table[column].iloc[data.rows]
    values = pd.to_numeric(picked, errors="coerce").to_numpy(dtype=float)
    if values.size != n:
        raise UserError(f"--holdout '{spec}': the table's rows do not line up with the {n} points")
    compare = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[op]
    mask = compare(values, threshold)
    if not 0 < mask.sum() < n:
        raise UserError(f"--holdout '{spec}': holds out {int(mask.sum())} of {n} points")
    return mask


def _largest_sizes(spec: str, arg: str, data: FitData) -> np.ndarray:
    """The points of the K largest distinct model sizes N (`largest-n:K`)."""
    if "n" not in data.input_names:
        raise UserError(f"--holdout {spec}: holds out model sizes, but the law has no input N")
    try:
        count = int(arg)
    except ValueError:
        raise UserError(f"--holdout {spec}: '{arg}' is not a whole number") from None
    n_values = data.inputs[data.input_names.index("n")]
    sizes = np.unique(n_values)
    if not 1 <= count < sizes.size:
        raise UserError(
            f"--holdout {spec}: holds out {count} of {sizes.size} model sizes; keep at least one and hold out one"
        )
    return n_values >= sizes[-count]
