"""The report's figures, as in the seed: the L(N, D) contour with an iso-metric profile (Figs 1 and 4), the
relative-change heatmap (Fig 3), train and eval laws side by side, fit diagnostics and a two-study comparison.
The envelope figures (Figs 2, 5 and 6) are in `envelope_figures`.

Every function returns a matplotlib Figure (the Agg backend; nothing is shown). One sign convention for
improvements ("improvement, %", positive = better) whichever way the metric runs; extrapolation is dashed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from scalinglab.fit.law import ScalingLaw
from scalinglab.format import percent
from scalinglab.optimal.iso_metric import Profile
from scalinglab.report.envelope_figures import drawn_envelope, envelope_figure, metric_by_scale
from scalinglab.report.style import (
    EXTRAPOLATED,
    IMPROVEMENT_LABEL,
    SIZE_CMAP,
    improvement_percent,
    legend_below,
    legend_right,
    metric_scale,
    plt,
    scale_label,
    tidy_log_axis,
)

__all__ = [
    "comparison_figure",
    "diagnostics_figure",
    "drawn_envelope",
    "envelope_figure",
    "law_contour",
    "metric_by_scale",
    "relative_heatmap",
    "train_eval_figure",
]


def quiet_predict(law: ScalingLaw, **inputs: np.ndarray) -> np.ndarray:
    """The law's prediction for drawing: extrapolation is marked on the figure, not warned about per point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return law.predict(**inputs)


def in_domain(law: ScalingLaw, value: np.ndarray) -> np.ndarray:
    """Where the predicted metric is a value the metric can take: > 0 for a loss, in [0, ceiling] for mAP."""
    if law.higher_is_better:
        return np.isfinite(value) & (value >= 0) & (value <= law.ceiling)
    return np.isfinite(value) & (value > 0)


def law_contour(law: ScalingLaw, points: pd.DataFrame, metric: str, profile: Profile | None = None) -> Figure:
    """Filled contours of the fitted L(N, D) at evenly spaced levels over the observed grid (widened to show
    the profile's cheapest point), the runs as points on the same colour scale, the fitted range as a dashed
    box, the iso-metric profile in black (dashed outside the fitted range) and its cheapest point."""
    n_span, d_span = _contour_spans(law, profile)
    n, d = np.geomspace(*n_span, 140), np.geomspace(*d_span, 140)
    grid_n, grid_d = np.meshgrid(n, d)
    value = quiet_predict(law, n=grid_n.ravel(), d=grid_d.ravel()).reshape(grid_n.shape)
    valid = in_domain(law, value)
    observed = points["value"].to_numpy(float)
    both = np.concatenate([value[valid], observed])
    levels = MaxNLocator(nbins=12).tick_values(float(both.min()), float(both.max()))
    fig, ax = plt.subplots(figsize=(6.6, 5.6), layout="constrained")
    cmap = plt.get_cmap("viridis" if law.higher_is_better else "viridis_r")
    filled = ax.contourf(grid_n, grid_d, np.ma.masked_where(~valid, value), levels=levels, cmap=cmap)
    _draw_runs_and_range(ax, law, points)
    if not valid.all():
        ax.text(0.01, 0.01, f"blank: the law leaves the range {metric} can take", transform=ax.transAxes, fontsize=7)
    if profile is not None:
        _draw_profile(ax, law, profile, metric)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="model parameters N",
        ylabel="training data D",
        xlim=n_span,
        ylim=d_span,
        title=f"fitted {metric}(N, D), {law.form_.name} form",
    )
    tidy_log_axis(ax.xaxis)
    tidy_log_axis(ax.yaxis)
    fig.colorbar(filled, ax=ax, label=f"{metric} ({'higher' if law.higher_is_better else 'lower'} is better)")
    legend_below(ax, ncol=3)
    return fig


def _contour_spans(law: ScalingLaw, profile: Profile | None) -> tuple[list[float], list[float]]:
    """The contour's N and D ranges: the fitted range widened 1.5x, and to the profile's cheapest point if near."""
    (n_lo, n_hi), (d_lo, d_hi) = law.domain_["n"], law.domain_["d"]
    n_span, d_span = [n_lo / 1.5, n_hi * 1.5], [d_lo / 1.5, d_hi * 1.5]
    if profile is not None:  # the cheapest point inside the axes, when it is not absurdly far
        for span, value, lo, hi in (
            (n_span, profile.cheapest["n"], n_lo, n_hi),
            (d_span, profile.cheapest["d"], d_lo, d_hi),
        ):
            if lo / 1e3 < value < hi * 1e3:
                span[0], span[1] = min(span[0], value / 1.5), max(span[1], value * 1.5)
    return n_span, d_span


def _draw_runs_and_range(ax: Axes, law: ScalingLaw, points: pd.DataFrame) -> None:
    """The runs as white points and the fitted range as a dashed box."""
    (n_lo, n_hi), (d_lo, d_hi) = law.domain_["n"], law.domain_["d"]
    ax.scatter(
        points["n_params"],
        points["dataset_size"],
        color="white",
        edgecolors="black",
        linewidths=0.9,
        s=40,
        zorder=3,
        label="runs (final point)",
    )
    ax.add_patch(
        Rectangle(
            (n_lo, d_lo),
            n_hi - n_lo,
            d_hi - d_lo,
            fill=False,
            ls="--",
            lw=1,
            ec="grey",
            label="fitted range",
        )
    )


def _draw_profile(ax, law: ScalingLaw, profile: Profile, metric: str) -> None:
    (n_lo, n_hi), (d_lo, d_hi) = law.domain_["n"], law.domain_["d"]
    curve = profile.curve
    inside = curve.n_params.between(n_lo, n_hi) & curve.dataset_size.between(d_lo, d_hi)
    label = f"profile: {metric} = {profile.target:.4g}"
    ax.plot(curve.n_params.where(inside), curve.dataset_size.where(inside), color="black", lw=2, label=label)
    ax.plot(
        curve.n_params.where(~inside),
        curve.dataset_size.where(~inside),
        color="black",
        **EXTRAPOLATED,
        label="profile, extrapolated",
    )
    ax.scatter(
        [profile.reference["n"]],
        [profile.reference["d"]],
        marker="*",
        s=170,
        color="white",
        edgecolors="black",
        zorder=4,
        label="reference run",
    )
    ax.scatter(
        [profile.cheapest["n"]],
        [profile.cheapest["d"]],
        marker="D",
        s=60,
        color="tab:red",
        edgecolors="black",
        zorder=5,
        label=f"cheapest ({profile.multipliers['flops']:.3g}x the compute)",
    )


def reference_cell(table: pd.DataFrame) -> tuple[float, float]:
    """The heatmap's reference: the smallest model scale's smallest data scale with a value."""
    for model in table.index:
        row = table.loc[model].dropna()
        if not row.empty:
            return float(model), float(row.index[0])
    raise ValueError("the table has no values")


def relative_heatmap(final: pd.DataFrame, metric: str, higher_is_better: bool) -> Figure:
    """The improvement of the final metric per model scale x data scale over the reference cell (the
    smallest model at its smallest data scale), in %, positive = better whichever way the metric runs:
    green better, red worse."""
    table = final.pivot_table(index="model_scale", columns="data_scale", values="value", aggfunc="mean")
    table = table.sort_index().sort_index(axis=1)
    model, data = reference_cell(table)
    better = improvement_percent(table.to_numpy(), float(table.loc[model, data]), higher_is_better)
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 3.2, 0.55 * table.shape[0] + 2.0), layout="constrained")
    limit = max(float(np.nanmax(np.abs(better))), 1e-9)
    image = ax.imshow(better, cmap="RdYlGn", norm=TwoSlopeNorm(0, -limit, limit), aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(better):
        if np.isfinite(value):
            ax.text(j, i, f"{value:+.1f}%", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(table.shape[1]), [scale_label(v) for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [scale_label(v) for v in table.index])
    ax.set(
        xlabel="data scale",
        ylabel="model scale",
        title=f"improvement of {metric} over the {scale_label(model)} model / {scale_label(data)} data cell",
    )
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=IMPROVEMENT_LABEL)
    return fig


def diagnostics_figure(law: ScalingLaw, points: pd.DataFrame, metric: str) -> Figure:
    """Predicted vs observed, and log(observed / predicted) against N, D and C (2 x 2); held-out points
    (column `held_out`) marked apart from the fitted ones."""
    predicted = quiet_predict(law, n=points["n_params"].to_numpy(), d=points["dataset_size"].to_numpy())
    observed = points["value"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.log(observed / predicted)
    held = points["held_out"].to_numpy(bool) if "held_out" in points else np.zeros(len(points), bool)
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.6), layout="constrained")
    axes = axes.ravel()
    styles = [(~held, {"color": "tab:blue", "label": "fitted runs"})]
    if held.any():
        styles.append((held, {"color": "tab:red", "marker": "s", "label": "held-out runs"}))
    for mask, style in styles:
        axes[0].scatter(observed[mask], predicted[mask], s=20, **style)
        for ax, column in zip(axes[1:], ("n_params", "dataset_size", "flops"), strict=True):
            if column in points:
                ax.scatter(points[column].to_numpy()[mask], residual[mask], s=20, **style)
    both = np.concatenate([observed, predicted])
    lo, hi = np.nanmin(both), np.nanmax(both)
    axes[0].plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = observed")
    scale = metric_scale(law.higher_is_better)
    axes[0].set(
        xscale=scale,
        yscale=scale,
        xlabel=f"observed {metric}",
        ylabel=f"predicted {metric}",
        title="predicted vs observed",
    )
    tidy_log_axis(axes[0].xaxis)
    tidy_log_axis(axes[0].yaxis)
    legend_below(axes[0])
    limit = max(float(np.nanmax(np.abs(residual))), 1e-6) * 1.15
    for ax, label in zip(axes[1:], ("parameters N", "training data D", "training FLOPs C"), strict=True):
        ax.axhline(0, color="black", lw=1)
        ax.set(
            xscale="log",
            ylim=(-limit, limit),
            xlabel=label,
            ylabel="log(observed / predicted)",
            title=f"residuals vs {label.split()[-1]} (> 0: observed above the law)",
        )
        ax.xaxis.set_major_locator(plt.matplotlib.ticker.LogLocator(numticks=5))
        tidy_log_axis(ax.xaxis)
    return fig


def _law_curve(ax, law: ScalingLaw, d: float, colour, label: str) -> None:
    n_lo, n_hi = law.domain_["n"]
    n = np.geomspace(n_lo / 1.5, n_hi * 4, 80)
    value = quiet_predict(law, n=n, d=np.full(n.size, d))
    value = np.where(in_domain(law, value), value, np.nan)
    inside = (n >= n_lo) & (n <= n_hi)
    ax.plot(np.where(inside, n, np.nan), value, color=colour, lw=1.6, label=label)
    ax.plot(np.where(inside, np.nan, n), value, color=colour, **EXTRAPOLATED)


def train_eval_figure(laws: dict[str, tuple[ScalingLaw, pd.DataFrame]], metric: str) -> Figure:
    """One panel per split (train, eval): the final metric against N, one colour per data size D, with the
    fitted law at that D (dashed beyond the fitted N)."""
    fig, axes = plt.subplots(1, len(laws), figsize=(5.2 * len(laws) + 0.6, 4.6), layout="constrained", squeeze=False)
    for ax, (split, (law, points)) in zip(axes[0], laws.items(), strict=True):
        sizes = np.sort(points["dataset_size"].unique())
        colours = SIZE_CMAP(np.linspace(0, 1, max(len(sizes), 2)))
        for colour, d in zip(colours, sizes, strict=False):
            at = points[points["dataset_size"] == d]
            ax.scatter(at["n_params"], at["value"], color=colour, s=22, edgecolors="black", linewidths=0.5, zorder=3)
            _law_curve(ax, law, float(d), colour, f"D = {d:.3g}")
        ax.set(
            xscale="log",
            yscale=metric_scale(law.higher_is_better),
            xlabel="model parameters N",
            ylabel=f"{split} {metric}",
            title=f"{split} {metric}: {law.form_.name} law (dashed: extrapolated)",
        )
        tidy_log_axis(ax.xaxis)
        tidy_log_axis(ax.yaxis)
    legend_right(axes[0][-1])
    return fig


def comparison_figure(studies: dict[str, tuple[ScalingLaw, pd.DataFrame]], metric: str) -> Figure:
    """Two (or more) studies: each fitted law's best metric at each budget on a shared FLOPs axis (solid over
    the study's runs, dashed beyond), its runs as points and the span of its budgets shaded; and the
    fitted exponents with their intervals (an exponent at its bound hatched, an open side drawn as an arrow)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    lowest = min(float(points["flops"].min()) for _, points in studies.values())
    highest = max(float(points["flops"].max()) for _, points in studies.values())
    budgets = np.geomspace(lowest / 3, highest * 3, 60)
    width = 0.8 / len(studies)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
    names = ("alpha", "beta")
    for k, (name, (law, points)) in enumerate(studies.items()):
        colour = colours[k % len(colours)]
        ratio = (points["flops"] / (points["n_params"] * points["dataset_size"])).median()
        n = np.geomspace(law.domain_["n"][0] / 10, law.domain_["n"][1] * 10, 200)
        pick = np.max if law.higher_is_better else np.min
        best = np.array([pick(quiet_predict(law, n=n, d=c / (ratio * n))) for c in budgets])
        inside = (budgets >= points["flops"].min()) & (budgets <= points["flops"].max())
        left.plot(np.where(inside, budgets, np.nan), best, color=colour, lw=2, label=f"{name}: best {metric} at C")
        left.plot(np.where(inside, np.nan, budgets), best, color=colour, **EXTRAPOLATED)
        left.scatter(
            points["flops"], points["value"], color=colour, s=16, alpha=0.7, edgecolors="black", linewidths=0.3
        )
        span = (
            {"color": colour, "alpha": 0.12}
            if k == 0
            else {"facecolor": "none", "edgecolor": to_rgba(colour, 0.3), "hatch": "//"}
        )
        left.axvspan(points["flops"].min(), points["flops"].max(), label=f"{name}: runs", lw=0, **span)
        _exponent_bars(right, law, names, k, width, colour, name)
    right.set_xticks(np.arange(len(names)) + width * (len(studies) - 1) / 2, names)
    left.set(
        xscale="log",
        yscale=metric_scale(next(iter(studies.values()))[0].higher_is_better),
        xlabel="training FLOPs C",
        ylabel=metric,
        title="fitted laws on a shared compute axis (dashed: extrapolated)",
    )
    tidy_log_axis(left.xaxis)
    tidy_log_axis(left.yaxis)
    legend_below(left)
    levels = ", ".join(sorted({percent(law.ci_level) for law, _ in studies.values()}))
    right.set(ylabel="exponent", title=f"fitted exponents ({levels} intervals; hatched: at a bound)")
    legend_below(right)
    return fig


def _exponent_bars(ax, law: ScalingLaw, names: tuple[str, ...], k: int, width: float, colour: str, label: str) -> None:
    ci = law.ci_ or {}
    at_bounds = set(getattr(law, "at_bounds_", []))
    for i, p in enumerate(names):
        if p not in law.params_:
            continue
        x, value = i + k * width, law.params_[p]
        hatch = "//" if p in at_bounds else None
        ax.bar(
            x,
            value,
            width,
            color=colour,
            alpha=0.5 if hatch else 1.0,
            hatch=hatch,
            edgecolor="black",
            label=label if i == 0 else None,
        )
        lo, hi = ci.get(p, (value, value))
        if p in at_bounds:
            ax.annotate("at bound", (x, value), ha="center", va="bottom", fontsize=7)
            continue
        top = hi if hi is not None else value * 1.5
        bottom = lo if lo is not None else 0.0
        ax.errorbar(x, value, yerr=[[value - bottom], [top - value]], color="black", capsize=3)
        if hi is None or lo is None:
            ax.annotate("open", (x, top), ha="center", va="bottom", fontsize=7)
