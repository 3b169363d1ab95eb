"""Report pieces for task metrics through a two-step law and for laws compared across eval sets.

- `link_figure`: step 2, the metric against the intermediate (the loss) at every checkpoint, coloured by N,
  with the fitted link;
- `chained_figure`: the chained prediction link(law(N, D)) beside the direct law on the metric, with the
  held-out points of a direct-vs-two-step backtest when given;
- `backtest_table`, `eval_set_table`: the backtest scores and each eval set's law (exponents with intervals);
- `two_step_section`: all of the above from the fits `analysis.two_step` made, for the HTML report to lay out.

Every figure is a matplotlib Figure (Agg backend); nothing is shown.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scalinglab.analysis.two_step import EXPONENTS, TwoStepFits, exponent_differences
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.two_step import TwoStepData, TwoStepLaw
from scalinglab.format import interval_text
from scalinglab.report.style import EXTRAPOLATED, SIZE_CMAP, legend_below, number, plt, tidy_log_axis


def link_figure(law: TwoStepLaw, data: TwoStepData, metric: str) -> Figure:
    """Step 2: the metric against the intermediate at every checkpoint of every run, coloured by model size N,
    with the fitted link (dashed beyond the intermediate's observed range)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    n = data.inputs[data.input_names.index("n")] if "n" in data.input_names else data.inputs[0]
    label = "model parameters N" if "n" in data.input_names else data.input_names[0]
    dots = ax.scatter(
        data.x,
        data.y,
        c=n,
        cmap=SIZE_CMAP,
        norm=LogNorm(n.min(), n.max() * 1.0001),
        s=16,
        edgecolors="black",
        linewidths=0.3,
        zorder=3,
    )
    fig.colorbar(dots, ax=ax, label=label)
    lo, hi = law.link_.domain
    span = hi - lo
    x = np.linspace(lo - 0.3 * span, hi + 0.3 * span, 200)
    inside = (x >= lo) & (x <= hi)
    y = law.link_(x)
    ax.plot(np.where(inside, x, np.nan), y, color="tab:red", lw=2, label=f"{law.link_.name} link")
    ax.plot(np.where(inside, np.nan, x), y, color="tab:red", **EXTRAPOLATED)
    ax.set(
        xlabel=f"{law.via_} (step 1: the law's target)",
        ylabel=metric,
        title=f"step 2: {metric} as a {law.link_.name} of {law.via_} ({law.n_pairs_} checkpoints, {law.n_runs_} runs)",
    )
    legend_below(ax, 1)
    return fig


def _quiet(predict: Any, **inputs: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return predict(**inputs)


def chained_figure(
    law: TwoStepLaw,
    direct: ScalingLaw | None,
    data: TwoStepData,
    metric: str,
    held_out: pd.DataFrame | None = None,
) -> Figure:
    """Left: the metric against N at the largest D of the sweep, the chained prediction (band: its bootstrap
    interval) beside the direct law. Right, when a backtest's per-point predictions are given: predicted
    against observed on the held-out points, one colour per method, with their intervals."""
    panels = 2 if held_out is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels + 0.4, 4.6), layout="constrained", squeeze=False)
    _chained_panel(axes[0][0], law, direct, data, metric)
    if held_out is not None:
        _held_out_panel(axes[0][1], held_out, metric)
    return fig


def _sweep(law: TwoStepLaw) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The first input from half its smallest to 8x its largest value (and where it is fitted), the others at max."""
    names = law.step1_.form_.inputs
    lo, hi = law.step1_.domain_[names[0]]
    grid = np.geomspace(lo / 2, hi * 8, 80)
    inputs = {names[0]: grid}
    for other in names[1:]:
        inputs[other] = np.full(grid.size, law.step1_.domain_[other][1])
    return inputs, (grid >= lo) & (grid <= hi)


def _chained_panel(ax: Axes, law: TwoStepLaw, direct: ScalingLaw | None, data: TwoStepData, metric: str) -> None:
    """The chained prediction (with its band) and the direct law against the first input; runs' last checkpoints."""
    names = law.step1_.form_.inputs
    first = names[0]
    inputs, inside = _sweep(law)
    grid = inputs[first]
    chained = _quiet(law.predict, **inputs)
    ax.plot(np.where(inside, grid, np.nan), chained, color="tab:blue", lw=2, label="two-step (chained)")
    ax.plot(np.where(inside, np.nan, grid), chained, color="tab:blue", **EXTRAPOLATED)
    if law.bootstrap_theta_ is not None:
        _, band_lo, band_hi = _quiet(lambda **k: law.predict(return_ci=True, **k), **inputs)
        ax.fill_between(grid, band_lo, band_hi, color="tab:blue", alpha=0.15, label=f"{law.ci_level:.0%} interval")
    if direct is not None and direct.form_.inputs == names:
        ax.plot(grid, _quiet(direct.predict, **inputs), color="tab:orange", lw=1.6, ls="-.", label="direct law")
    last = data.last_checkpoints()  # the law predicts where a run ends
    if len(names) > 1:
        last &= np.isclose(data.inputs[len(names) - 1], law.step1_.domain_[names[-1]][1])
    ax.scatter(data.inputs[0][last], data.y[last], color="black", s=14, zorder=3, label="observed (last checkpoint)")
    suffix = f" at {names[-1]} = {number(law.step1_.domain_[names[-1]][1])}" if len(names) > 1 else ""
    label = {"n": "model parameters N", "d": "training data D", "x": "x"}.get(first, first)
    ax.set(xscale="log", xlabel=label, ylabel=metric, title=f"chained vs direct{suffix}")
    _metric_limits(ax, law, data.y)
    tidy_log_axis(ax.xaxis)
    legend_below(ax, 2)


def _metric_limits(ax: Axes, law: TwoStepLaw, y: np.ndarray) -> None:
    """The metric axis around the observed values: linear within [0, ceiling] when higher is better, else log."""
    low, high = float(np.min(y)), float(np.max(y))
    if law.higher_is_better:
        ax.set_ylim(max(0.0, low - 0.2 * (high - low)), min(law.ceiling, high + 0.2 * (high - low)))
    else:
        ax.set_yscale("log")
        ax.set_ylim(low / 2, high * 2)  # a band that leaves the metric's range is cut at the axes
        tidy_log_axis(ax.yaxis)


def _held_out_panel(ax: Axes, held_out: pd.DataFrame, metric: str) -> None:
    """Predicted against observed on a backtest's held-out points, one colour per method, with their intervals."""
    colours = ("tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red")
    for k, (method, rows) in enumerate(held_out.groupby("method", sort=True)):
        colour = colours[k % len(colours)]
        err = np.vstack([rows["predicted"] - rows["lower"], rows["upper"] - rows["predicted"]])
        ax.errorbar(
            rows["observed"],
            rows["predicted"],
            yerr=np.where(np.isfinite(err), np.abs(err), 0),
            fmt="o",
            ms=4,
            color=colour,
            alpha=0.8,
            label=method,
        )
    both = pd.concat([held_out["observed"], held_out["predicted"]])
    edge = [float(both.min()), float(both.max())]
    ax.plot(edge, edge, color="grey", lw=1, ls=":")
    ax.set(xlabel=f"observed {metric}", ylabel=f"predicted {metric}", title="held-out runs: predicted vs observed")
    legend_below(ax, 2)


def backtest_table(result: Any) -> pd.DataFrame:
    """The direct-vs-two-step backtest scores as a table (method, MAE, RMSE, bias, coverage, points)."""
    columns = ["rank", "method", "mae", "rmse", "bias", "coverage", "n_test"]
    return result.scores[columns].rename(columns={"n_test": "held-out points"})


def eval_set_table(laws: dict[str, ScalingLaw]) -> pd.DataFrame:
    """One row per eval set: every exponent with its interval (open sides said in words)."""
    rows = []
    for split, law in laws.items():
        row: dict[str, Any] = {"eval set": split, "form": law.form_.name}
        ci = law.ci_ or {}
        for name in law.params_:
            if name in EXPONENTS:
                row[name] = number(law.params_[name])
                if name in ci:
                    row[f"{name} {law.ci_level:.0%} interval"] = interval_text(*ci[name])
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class TwoStepSection:
    """What the report shows for a task metric through the loss: figures, tables and sentences."""

    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def two_step_section(fits: TwoStepFits) -> TwoStepSection:
    """The two-step section's figures, tables and sentences, drawn from the analysis's fits."""
    section = TwoStepSection()
    law, metric = fits.law, fits.metric
    held_out = None
    if fits.backtest is not None:
        held_out = fits.backtest.points
        section.tables["direct vs two-step backtest"] = backtest_table(fits.backtest)
        section.notes.append(fits.backtest.recommendation)
    else:
        section.notes.append(f"no direct-vs-two-step backtest: {fits.backtest_error}")
    section.figures["link"] = link_figure(law, fits.data, metric)
    section.figures["chained"] = chained_figure(law, fits.direct, fits.data, metric, held_out)
    if law.link_selection_ is not None:
        section.tables["link selection"] = law.link_selection_.table
        section.notes.append(f"link: {law.link_selection_.choice}: {law.link_selection_.reason}")
    if fits.eval_laws:
        section.tables["laws across eval sets"] = eval_set_table(fits.eval_laws)
        section.notes += exponent_differences(fits.eval_laws)
    return section


def add_two_step_section(page: Any, analysis: Any) -> None:
    """The report's section for a task metric through the loss, on an `html.Page` for an `analysis.Analysis`:
    nothing when the study has no eval loss beside the metric; a warning line when the fits failed."""
    metric = analysis.metric
    if analysis.two_step_error is not None:
        page.heading(f"{metric} through the loss")
        page.warning(f"no two-step law: {analysis.two_step_error}")
        return
    if analysis.two_step is None:
        return
    section = two_step_section(analysis.two_step)
    page.heading(f"{metric} through the loss (two-step law)")
    page.text(
        f"Step 1 fits the eval loss by the law; step 2 fits {metric} as a monotone link of the loss over every "
        "checkpoint of every run; the chained prediction is the link of the predicted loss, with an interval "
        "from resampling whole runs through both steps."
    )
    captions = {
        "link": f"step 2: {metric} against the eval loss at every checkpoint, coloured by model size, and the link",
        "chained": f"the chained prediction beside the direct law of {metric}; held-out runs predicted both ways",
    }
    for name, fig in section.figures.items():
        page.figure(f"two_step_{name}", fig, captions[name])
    for title, table in section.tables.items():
        page.text(title)
        page.table(table)
    for note in section.notes:
        page.text(note)
