"""Rendering results for people (rich tables) and for programs (JSON), and the option checks the commands share.

The CLI commands build results; this module only prints them (numbers are formatted by `scalinglab.format`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from scalinglab.errors import UserError
from scalinglab.format import fmt, interval_text, percent, short

if TYPE_CHECKING:
    import pandas as pd

    from scalinglab.fit.law import ScalingLaw

console = Console()
err_console = Console(stderr=True)
K_OPTION = ("--flops-per-param-sample", "--k")  # k in C = k N D; --k is the old spelling, still accepted
K_NAME = "/".join(K_OPTION)
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?x?"
# Known kinds of repeated warnings, with the one line the terminal prints for them.
WARNING_KINDS = (
    (r"far extrapolation", "{count} predictions extrapolate far beyond the data: see the report or --json"),
    (r"isoflop: budget .* skipped", "isoflop: {count} budgets skipped: see the report or --json for each reason"),
)


def check_count(value: int, option: str, minimum: int = 0) -> None:
    """A UserError naming the option unless `value` >= `minimum` (refits, bins, points, seeds)."""
    if value < minimum:
        raise UserError(f"{option} must be >= {minimum}, got {value}")


def fit_summary(law: ScalingLaw, derived: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The JSON view of a fit: everything but the raw bootstrap samples."""
    out = law.to_dict()
    out.pop("bootstrap_theta")
    if derived:
        out["derived"] = derived
    return out


def print_selection(selection: Any) -> None:
    """The form selection's table: every candidate's held-out errors, and the choice with its reason."""
    extrap = selection.by_extrapolation and "extrap_log_error" in selection.table
    title = f"form selection ({selection.method})"
    table = Table(title=title, title_justify="left", caption="* the chosen form", caption_justify="left")
    table.add_column("form", no_wrap=True)
    scored = "beyond cuts" if extrap else "held out"
    for name in ("params", f"{scored}: median", "|log error| ± SE") + (("loo median",) if extrap else ("folds",)):
        table.add_column(name, justify="right")
    table.add_column("at a bound")
    for row in selection.table.itertuples():
        bounds = getattr(row, "at_bounds", None)
        key = "extrap" if extrap else "cv"
        median, mean, se = (getattr(row, f"{key}_{part}") for part in ("error", "log_error", "se"))
        cells = [row.form + (" *" if row.chosen else ""), str(row.free_params)]
        cells += [f"{median:.2%}" if math.isfinite(median) else "-", f"{fmt(mean, 3)} ± {fmt(se, 2)}"]
        cells.append(f"{row.cv_error:.2%}" if extrap else str(row.folds))
        table.add_row(*cells, bounds if isinstance(bounds, str) and bounds else "-")
    console.print(table)
    console.print(f"chosen: {selection.choice}: {selection.reason}", highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_fit(law: ScalingLaw, derived: dict[str, dict[str, float]] | None = None, source: str = "") -> None:
    ci, se = law.ci_, law.se_
    title = f"{law.form_.name} law" + (f" ({source})" if source else "")
    table = Table(title=title, title_justify="left", caption=law.form_.formula, caption_justify="left")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    if ci:
        table.add_column(f"{percent(law.ci_level)} {law.intervals} interval", justify="right")
    if se:
        table.add_column("bootstrap SE", justify="right")
    for name, value in law.params_.items():
        row = [name, fmt(value)]
        if ci:
            row.append(interval_text(*ci[name]) if name in ci else "fixed")
        if se:
            row.append(fmt(se[name]))
        table.add_row(*row)
    for name, item in (derived or {}).items():
        row = [name, fmt(item["value"])]
        if ci:
            row.append(f"{fmt(item['lower'])} .. {fmt(item['upper'])} (bootstrap)" if "lower" in item else "")
        if se:
            row.append("")
        table.add_row(*row, style="cyan")
    console.print(table)
    direction = "higher is better, fitted on ceiling - metric" if law.higher_is_better else "lower is better"
    console.print(
        f"objective {law.objective_:.10g} ({law.loss_function().kind}, summed) over {law.n_points_} points; "
        f"{law.n_reached_} of {law.n_starts_} starts reached it; metric: {direction}"
    )
    for message in law.warnings_:
        err_console.print(f"warning: {message}", highlight=False, markup=False)


def frame_table(frame: pd.DataFrame, title: str, caption: str | None = None) -> Table:
    """A DataFrame as a rich table that fits 80 columns: numbers in short form, headers broken at "_",
    no vertical rules, empty text columns left out, long cells folded rather than cut."""
    keep = [c for c in frame.columns if not frame[c].map(lambda v: v is None or v == "" or v != v).all()]
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in keep:
        header = str(column).replace("_", "\n")
        width = max(len(part) for part in header.split("\n"))
        table.add_column(header, justify="right", overflow="fold", min_width=width)
    for row in frame[keep].itertuples(index=False):
        table.add_row(*[short(v) if isinstance(v, (float, np.floating)) else str(v) for v in row])
    return table


def group_warnings(messages: list[str]) -> list[str]:
    """One line per kind of warning for the terminal (the full list goes to reports and --json): a known kind
    as its summary, any other message repeated with other numbers as its first instance and a count."""
    groups: dict[str, list[str]] = {}
    for message in messages:
        key = next((template for pattern, template in WARNING_KINDS if re.search(pattern, message)), None)
        groups.setdefault(key or re.sub(NUMBER, "#", message), []).append(message)
    lines = []
    templates = {template for _, template in WARNING_KINDS}
    for key, members in groups.items():
        if len(members) == 1:
            lines.append(members[0])
        elif key in templates:
            lines.append(key.format(count=len(members)))
        else:
            lines.append(f"{members[0]} (and {len(members) - 1} more like it: see the report or --json)")
    return lines


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-ready rows, non-finite numbers as null."""
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
