"""The report's hyperparameter section: the metric against each searched hyperparameter per (N, D) cell with
each cell's fitted optimum, the optimum against compute with its law, and the laws' exponents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scalinglab.format import interval_text, percent
from scalinglab.report.style import SIZE_CMAP, plt, tidy_log_axis

if TYPE_CHECKING:
    from scalinglab.hparams import Tuned

LINESTYLES = ("-", "--", ":", "-.")


def hparam_figure(tuned: Tuned, metric: str) -> Figure:
    """Left: the metric against the hyperparameter, a line per cell (colour: N; line style: D, solid the
    largest), each cell's fitted optimum starred. Right: the optima against C with the law in C."""
    fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    name, points, optima = tuned.column, tuned.points, tuned.optima
    norm = LogNorm(points.n.min(), points.n.max() * 1.0001)
    cmap = plt.get_cmap(SIZE_CMAP)
    d_values = np.sort(points.d.unique())[::-1]
    for (n, d), cell in points.groupby(["n", "d"]):
        style = LINESTYLES[min(int(np.flatnonzero(d_values == d)[0]), len(LINESTYLES) - 1)]
        cell = cell.sort_values(name)
        ax.plot(cell[name], cell["value"], style, marker="o", ms=3, color=cmap(norm(n)), lw=1.2)
    ok = optima[optima.status == "ok"]
    ax.scatter(ok.opt, ok.at_opt, marker="*", s=90, c=ok.n, cmap=SIZE_CMAP, norm=norm, edgecolors="black", zorder=4)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=SIZE_CMAP), ax=ax, label="model parameters N")
    ax.set(xscale="log", xlabel=name, ylabel=metric, title=f"{metric} against {name} per cell (star: fitted optimum)")
    if ok.empty:  # every cell's best value at the grid's end: nothing to draw against compute
        right.text(0.5, 0.5, "no cell's optimum is bracketed", ha="center", va="center", transform=right.transAxes)
        right.set(xticks=[], yticks=[], title=f"optimal {name} against compute")
        tidy_log_axis(ax.xaxis)
        return fig
    right.errorbar(
        ok.c, ok.opt, yerr=[ok.opt - ok.lo.fillna(ok.opt), ok.hi.fillna(ok.opt) - ok.opt], fmt="o", color="black"
    )
    law = tuned.laws.get("c")
    if law is not None and len(ok):
        c = np.geomspace(ok.c.min() / 3, ok.c.max() * 10, 100)
        right.plot(
            c, law.scale * c ** law.exponents["c"], color="tab:red", label=f"{name}* = k C^{law.exponents['c']:.3g}"
        )
        right.legend(loc="best", fontsize=8)
    right.set(
        xscale="log",
        yscale="log",
        xlabel="training FLOPs C",
        ylabel=f"optimal {name}",
        title=f"optimal {name} against compute",
    )
    for axis in (ax.xaxis, right.xaxis, right.yaxis):
        tidy_log_axis(axis)
    return fig


def law_rows(tuned: Tuned) -> pd.DataFrame:
    """Each law of the hyperparameter: its variables, scale, exponents with intervals, cells, scatter."""
    rows: list[dict[str, Any]] = []
    for key, law in tuned.laws.items():
        if law is None:
            continue
        spans = law.exponent_intervals()
        exponents = "; ".join(f"{v}: {e:.3g} {interval_text(*spans[v])}" for v, e in law.exponents.items())
        rows.append(
            {
                "law": f"{tuned.column}* in {'C' if key == 'c' else 'N and D'}",
                "k": law.scale,
                f"exponents ({percent(law.level)} intervals)": exponents,
                "cells": law.cells,
                "log scatter": float(np.sqrt(law.residual_var)),
            }
        )
    return pd.DataFrame(rows)


def add_hparams_section(page: Any, analysis: Any) -> None:
    """The section, when the analysis found trials and fitted their optima."""
    if not analysis.hparams:
        return
    page.heading("Hyperparameters")
    page.text(
        f"{analysis.trials.note.split(';')[0]}. Each cell's optimum is the vertex of a parabola in log(value) "
        "through its best trial and two neighbours each side; a cell whose best value is at the grid's end has no "
        "bracketed optimum and is left out of the laws."
    )
    for tuned in analysis.hparams:
        page.figure(
            f"hparam-{tuned.column}", hparam_figure(tuned, analysis.metric), f"{analysis.metric} against {tuned.column}"
        )
        rows = law_rows(tuned)
        if len(rows):
            page.table(rows)
        cost = tuned.cost_2x_rel
        page.text(
            f"A 2x error in {tuned.column} costs {percent(cost)} of the metric (median over cells)."
            if np.isfinite(cost)
            else f"No cell's optimum in {tuned.column} is bracketed: widen the range searched to measure it."
        )
