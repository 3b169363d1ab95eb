"""Rendering fits for people (rich tables) and for programs (JSON).

The CLI commands build results; this module only formats them.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from scalinglab.fit.law import ScalingLaw

console = Console()
err_console = Console(stderr=True)


def fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.6g}" if 1e-3 <= abs(value) < 1e6 or value == 0 else f"{value:.4e}"


def fit_summary(law: ScalingLaw, derived: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The JSON view of a fit: everything but the raw bootstrap samples."""
    out = law.to_dict()
    out.pop("bootstrap_theta")
    if derived:
        out["derived"] = derived
    return out


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_fit(law: ScalingLaw, derived: dict[str, dict[str, float]] | None = None, source: str = "") -> None:
    ci, se = law.ci_, law.se_
    title = f"{law.form_.name}: {law.form_.formula}" + (f"  ({source})" if source else "")
    table = Table(title=title, title_justify="left")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    if ci:
        table.add_column(f"{law.ci_level:.0%} interval", justify="right")
        table.add_column("std. error", justify="right")
    for name, value in law.params_.items():
        row = [name, fmt(value)]
        if ci:
            row += [f"{fmt(ci[name][0])} .. {fmt(ci[name][1])}", fmt(se[name])]
        table.add_row(*row)
    for name, item in (derived or {}).items():
        row = [name, fmt(item["value"])]
        if ci:
            row += [f"{fmt(item['lower'])} .. {fmt(item['upper'])}", ""]
        table.add_row(*row, style="cyan")
    console.print(table)
    direction = "higher is better, fitted on ceiling - metric" if law.higher_is_better else "lower is better"
    console.print(
        f"objective {law.objective_:.10g} ({law._loss().kind}, summed) over {law.n_points_} points; "
        f"{law.n_reached_} of {law.n_starts_} starts reached it; metric: {direction}"
    )
    for message in law.warnings_:
        err_console.print(f"warning: {message}", highlight=False, markup=False)


def frame_table(frame: pd.DataFrame, title: str) -> Table:
    """A DataFrame as a rich table, numbers in short form."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*[fmt(v) if isinstance(v, (float, np.floating)) else str(v) for v in row])
    return table


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-ready rows, non-finite numbers as null."""
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
