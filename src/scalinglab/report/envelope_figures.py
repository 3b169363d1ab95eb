"""The envelope figures (seed Figs 2 and 5) and the absolute metric per scale (seed Fig 6).

The envelope is drawn along the runs' curves: each run is interpolated between its checkpoints (straight
in the plotted coordinates), the best run is taken at every FLOPs value, and the result is made monotone
(the best metric reachable with at most that compute). It is never worse than any run where that run has
points, so it can never cross a run curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scalinglab.optimal.compute_optimal import ComputeOptimal
from scalinglab.report.style import SIZE_CMAP, legend_below, metric_scale, plt, scale_label, tidy_log_axis


def _to_plot(value: np.ndarray, scale: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(value) if scale == "log" else np.asarray(value, dtype=float)


def _from_plot(value: np.ndarray, scale: str) -> np.ndarray:
    return np.exp(value) if scale == "log" else value


def drawn_envelope(curves: pd.DataFrame, higher_is_better: bool, scale: str | None = None) -> pd.DataFrame:
    """The monotone envelope of the runs' curves (columns run_id, flops, value), as drawn.

    Every run is linear between its checkpoints in (log FLOPs, plotted metric), the plotted metric being
    log(value) on a log axis and value on a linear one. The envelope is evaluated at every checkpoint FLOPs
    value of every run (between two such values each run is linear, so the best of them is concave for a
    loss and the envelope's straight segment lies on or below it), then made monotone: the best value
    reached at or below each FLOPs value. Returns columns flops, value, run_id (the run that is best there).
    """
    scale = scale or metric_scale(higher_is_better)
    sign = -1.0 if higher_is_better else 1.0
    runs = []
    for run_id, run in curves.groupby("run_id", sort=True):
        run = run[np.isfinite(run["value"]) & (run["flops"] > 0)].sort_values("flops")
        y = _to_plot(run["value"].to_numpy(), scale)
        keep = np.isfinite(y)
        if keep.sum() == 0:
            continue
        x = np.log(run["flops"].to_numpy()[keep])
        x, first = np.unique(x, return_index=True)  # one point per FLOPs value: the first checkpoint there
        runs.append((run_id, x, sign * y[keep][first]))
    if not runs:
        return pd.DataFrame(columns=["flops", "value", "run_id"])
    grid = np.unique(np.concatenate([x for _, x, _ in runs]))
    best = np.full(grid.size, np.inf)
    owner = np.full(grid.size, "", dtype=object)
    for run_id, x, y in runs:
        inside = (grid >= x[0]) & (grid <= x[-1])
        value = np.interp(grid[inside], x, y)
        better = value < best[inside]
        idx = np.flatnonzero(inside)[better]
        best[idx] = value[better]
        owner[idx] = run_id
    defined = np.isfinite(best)
    grid, best, owner = grid[defined], best[defined], owner[defined]
    monotone = np.minimum.accumulate(best)
    for i in range(1, monotone.size):  # where the running best wins, the earlier run still owns the value
        if monotone[i] < best[i]:
            owner[i] = owner[i - 1]
    return pd.DataFrame({"flops": np.exp(grid), "value": _from_plot(sign * monotone, scale), "run_id": owner})


def envelope_figure(
    optimal: ComputeOptimal,
    metric: str,
    subtitle: str = "",
    marks: dict[str, list[tuple[str, float]]] | None = None,
) -> Figure:
    """Left: the metric against training FLOPs for every run, coloured by N, with the drawn envelope and
    other studies' compute marked as vertical lines. Right: N_opt(C), S_opt(C) and D_opt(C) from the
    binned envelope, with fitted lines and 95% bands."""
    curves = optimal.curves_.frame()
    higher = optimal.curves_.higher_is_better
    scale = metric_scale(higher)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.0), layout="constrained")
    sizes = np.sort(curves["n_params"].unique())
    norm = LogNorm(sizes.min(), sizes.max()) if len(sizes) > 1 else None
    for _, run in curves.groupby("run_id"):
        run = run.sort_values("flops")
        colour = SIZE_CMAP(norm(run["n_params"].iloc[0]) if norm else 0.5)
        left.plot(run["flops"], run["value"], color=colour, lw=1.1, alpha=0.85, marker=".", ms=3)
    env = drawn_envelope(curves, higher, scale)
    side = "upper" if higher else "lower"
    if not env.empty:
        left.plot(env["flops"], env["value"], color="black", lw=2.0, label=f"{side} envelope (best run at each C)")
    for k, (study, lines) in enumerate((marks or {}).items()):
        colour = ("tab:red", "tab:blue", "tab:brown", "tab:pink")[k % 4]
        for j, (label, flops) in enumerate(lines):
            left.axvline(flops, color=colour, ls=":", lw=1.2, label=study if j == 0 else None)
            left.annotate(
                label,
                (flops, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                va="top",
                fontsize=6,
                color=colour,
            )
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=SIZE_CMAP), ax=left, label="parameters N")
    title = f"{metric} vs compute" + (f" ({subtitle})" if subtitle else "")
    left.set(xscale="log", yscale=scale, xlabel="training FLOPs C", ylabel=metric, title=title)
    if scale == "linear":
        left.set_ylim(bottom=max(0.0, float(np.nanmin(curves["value"])) - 0.02))
    tidy_log_axis(left.xaxis)
    tidy_log_axis(left.yaxis)
    legend_below(left)
    _optimal_laws(right, optimal)
    tidy_log_axis(right.xaxis)
    return fig


def _optimal_laws(ax, optimal: ComputeOptimal) -> None:
    env = optimal.envelope_
    colours = {"N": "tab:blue", "S": "tab:orange", "D": "tab:green"}
    columns = {"N": "n_params", "S": "steps", "D": "samples_seen"}
    labels = {"N": "N_opt (parameters)", "S": "S_opt (steps)", "D": "D_opt (samples)"}
    drawn = False
    for quantity, colour in colours.items():
        law = optimal.laws_.get(("envelope", quantity))
        if law is None or columns[quantity] not in env.columns:
            continue
        c = np.geomspace(env["flops"].min(), env["flops"].max(), 50)
        ax.scatter(env["flops"], env[columns[quantity]], color=colour, s=14, alpha=0.7)
        interval = law.interval(ci_level=optimal.ci_level)
        span = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
        ax.plot(c, law.predict(c), color=colour, lw=2, label=f"{labels[quantity]} ∝ C^{law.exponent:.2f}{span}")
        if law.samples is not None and len(law.samples) > 1:
            band = np.exp(law.samples[:, :1] + law.samples[:, 1:] * np.log(c)[None, :])
            tail = 50 * (1 - optimal.ci_level)
            ax.fill_between(c, *np.percentile(band, [tail, 100 - tail], axis=0), color=colour, alpha=0.15)
        drawn = True
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="training FLOPs C",
        ylabel="optimal value",
        title="compute-optimal laws (envelope)",
    )
    if drawn:
        legend_below(ax, ncol=1)
    else:
        ax.text(
            0.5,
            0.5,
            "not enough overlapping runs\nto fit the envelope laws",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )


def metric_by_scale(final: pd.DataFrame, metric: str, higher_is_better: bool) -> Figure:
    """The final metric against model scale, one line per data scale (seed Fig 6)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    table = final.pivot_table(index="model_scale", columns="data_scale", values="value", aggfunc="mean")
    table = table.sort_index().sort_index(axis=1)
    colours = SIZE_CMAP(np.linspace(0, 1, max(table.shape[1], 2)))
    for k, data_scale in enumerate(table.columns):
        column = table[data_scale].dropna()
        ax.plot(column.index, column.to_numpy(), marker="o", color=colours[k], label=f"data {scale_label(data_scale)}")
    ax.set_xscale("log")
    ax.set_xticks(table.index, [scale_label(v) for v in table.index])
    ax.minorticks_off()
    ax.set(
        yscale=metric_scale(higher_is_better),
        xlabel="model scale",
        ylabel=f"final {metric}",
        title=f"{metric} against model scale, one line per data scale "
        f"({'higher' if higher_is_better else 'lower'} is better)",
    )
    tidy_log_axis(ax.yaxis)
    legend_below(ax, ncol=min(4, table.shape[1]))
    return fig
