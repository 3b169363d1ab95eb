"""The report's figures, as in the seed: the L(N, D) contour with an iso-metric profile, the envelope with
N_opt and S_opt fits, the relative-change heatmap, a two-study comparison and fit diagnostics.

Every function returns a matplotlib Figure (the Agg backend; nothing is shown).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm, TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from scalinglab.cli.render import percent  # noqa: E402
from scalinglab.fit.law import ScalingLaw  # noqa: E402
from scalinglab.optimal.compute_optimal import ComputeOptimal  # noqa: E402
from scalinglab.optimal.iso_metric import Profile  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})


def law_contour(law: ScalingLaw, points: pd.DataFrame, metric: str, profile: Profile | None = None) -> Figure:
    """Filled contours of the fitted L(N, D) over the observed grid (widened a little), the observed runs
    as points coloured on the same scale, and the iso-metric profile curve in black."""
    n_lo, n_hi = law.domain_["n"]
    d_lo, d_hi = law.domain_["d"]
    n = np.geomspace(n_lo / 1.5, n_hi * 1.5, 120)
    d = np.geomspace(d_lo / 1.5, d_hi * 1.5, 120)
    grid_n, grid_d = np.meshgrid(n, d)
    value = law.predict(n=grid_n.ravel(), d=grid_d.ravel()).reshape(grid_n.shape)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    levels = np.quantile(np.concatenate([value.ravel(), points["value"].to_numpy()]), np.linspace(0, 1, 16))
    levels = np.unique(levels)
    filled = ax.contourf(
        grid_n, grid_d, value, levels=levels, cmap="viridis_r" if not law.higher_is_better else "viridis"
    )
    ax.scatter(
        points["n_params"],
        points["dataset_size"],
        c=points["value"],
        cmap=filled.cmap,
        norm=filled.norm,
        edgecolors="white",
        s=45,
        zorder=3,
        label="observed runs",
    )
    if profile is not None:
        curve = profile.curve
        inside = curve[
            (curve.n_params >= n[0])
            & (curve.n_params <= n[-1])
            & (curve.dataset_size >= d[0])
            & (curve.dataset_size <= d[-1])
        ]
        ax.plot(
            inside.n_params,
            inside.dataset_size,
            color="black",
            lw=2,
            label=f"{metric} = {profile.target:.4g} (iso-metric profile)",
        )
        ax.scatter(
            [profile.reference["n"]],
            [profile.reference["d"]],
            marker="*",
            s=160,
            color="white",
            edgecolors="black",
            zorder=4,
            label="reference run",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="model parameters N",
        ylabel="training samples D",
        title=f"fitted {metric}(N, D), {law.form_.name} form",
    )
    fig.colorbar(filled, ax=ax, label=metric)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.85)
    return fig


def envelope_figure(optimal: ComputeOptimal, metric: str) -> Figure:
    """Left: the metric against training FLOPs for every run, coloured by N, with the envelope.
    Right: N_opt(C) and S_opt(C) (and D_opt when fitted) from the envelope, with fitted lines and bands."""
    curves = optimal.curves_.frame()
    env = optimal.envelope_
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    sizes = np.sort(curves["n_params"].unique())
    norm = LogNorm(sizes.min(), sizes.max()) if len(sizes) > 1 else None
    cmap = plt.get_cmap("plasma")
    for _, run in curves.groupby("run_id"):
        run = run.sort_values("flops")
        colour = cmap(norm(run["n_params"].iloc[0]) if norm else 0.5)
        left.plot(run["flops"], run["value"], color=colour, lw=1, alpha=0.8)
    if not env.empty:
        side = "upper" if optimal.curves_.higher_is_better else "lower"
        left.plot(env["flops"], env["value"], color="black", lw=2.2, label=f"{side} envelope")
        left.legend(fontsize=8)
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=left, label="parameters N")
    left.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel=metric, title=f"{metric} vs compute")

    colours = {"N": "tab:blue", "S": "tab:orange", "D": "tab:green"}
    columns = {"N": "n_params", "S": "steps", "D": "samples_seen"}
    labels = {"N": "N_opt (parameters)", "S": "S_opt (steps)", "D": "D_opt (samples)"}
    drawn = False
    for quantity, colour in colours.items():
        law = optimal.laws_.get(("envelope", quantity))
        if law is None or columns[quantity] not in env.columns:
            continue
        c = np.geomspace(env["flops"].min(), env["flops"].max(), 50)
        right.scatter(env["flops"], env[columns[quantity]], color=colour, s=14, alpha=0.7)
        interval = law.interval(ci_level=optimal.ci_level)
        span = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
        right.plot(c, law.predict(c), color=colour, lw=2, label=f"{labels[quantity]} ∝ C^{law.exponent:.2f}{span}")
        if law.samples is not None and len(law.samples) > 1:
            band = np.exp(law.samples[:, :1] + law.samples[:, 1:] * np.log(c)[None, :])
            tail = 50 * (1 - optimal.ci_level)
            right.fill_between(c, *np.percentile(band, [tail, 100 - tail], axis=0), color=colour, alpha=0.15)
        drawn = True
    right.set(
        xscale="log",
        yscale="log",
        xlabel="training FLOPs C",
        ylabel="optimal value",
        title="compute-optimal laws (envelope)",
    )
    if drawn:
        right.legend(fontsize=7)
    else:
        right.text(
            0.5,
            0.5,
            "not enough overlapping runs\nto fit the envelope laws",
            ha="center",
            va="center",
            transform=right.transAxes,
        )
    return fig


def relative_heatmap(final: pd.DataFrame, metric: str, higher_is_better: bool) -> Figure:
    """Relative change of the final metric per model scale x data scale against the smallest cell (1X/1X),
    annotated in %; green is better, red worse, whichever way the metric runs."""
    table = final.pivot_table(index="model_scale", columns="data_scale", values="value", aggfunc="mean")
    table = table.sort_index().sort_index(axis=1)
    base = table.iloc[0, 0]
    change = (table - base) / abs(base) * 100
    better = change if higher_is_better else -change
    fig, ax = plt.subplots(figsize=(1.2 * table.shape[1] + 2.4, 0.6 * table.shape[0] + 1.8), layout="constrained")
    limit = max(float(np.nanmax(np.abs(better.to_numpy()))), 1e-9)
    image = ax.imshow(
        better.to_numpy(), cmap="RdYlGn", norm=TwoSlopeNorm(0, -limit, limit), aspect="auto", origin="lower"
    )
    for (i, j), value in np.ndenumerate(change.to_numpy()):
        ax.text(j, i, f"{value:+.1f}%", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(table.shape[1]), [f"{v:g}X" for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{v:g}X" for v in table.index])
    ax.set(xlabel="data scale", ylabel="model scale", title=f"relative change of {metric} vs the 1X/1X cell")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="improvement (%)")
    return fig


def diagnostics_figure(law: ScalingLaw, points: pd.DataFrame, metric: str) -> Figure:
    """Predicted vs observed, and log residuals against N, D and C; held-out points (column `held_out`)
    marked apart from the fitted ones."""
    predicted = law.predict(n=points["n_params"].to_numpy(), d=points["dataset_size"].to_numpy())
    observed = points["value"].to_numpy()
    residual = np.log(observed) - np.log(predicted)
    held = points["held_out"].to_numpy(bool) if "held_out" in points else np.zeros(len(points), bool)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), layout="constrained")
    for mask, style in (
        (~held, {"color": "tab:blue", "label": "fitted"}),
        (held, {"color": "tab:red", "marker": "s", "label": "held out"}),
    ):
        if not mask.any():
            continue
        axes[0].scatter(observed[mask], predicted[mask], s=18, **style)
        for ax, column in zip(axes[1:], ("n_params", "dataset_size", "flops"), strict=True):
            if column in points:
                ax.scatter(points[column].to_numpy()[mask], residual[mask], s=18, **style)
    lo, hi = min(observed.min(), predicted.min()), max(observed.max(), predicted.max())
    axes[0].plot([lo, hi], [lo, hi], color="black", lw=1)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel=f"observed {metric}",
        ylabel=f"predicted {metric}",
        title="predicted vs observed",
    )
    axes[0].legend(fontsize=7)
    for ax, label in zip(axes[1:], ("parameters N", "training samples D", "training FLOPs C"), strict=True):
        ax.axhline(0, color="black", lw=1)
        ax.set(xscale="log", xlabel=label, ylabel="log residual", title=f"residuals vs {label.split()[-1]}")
    return fig


def comparison_figure(studies: dict[str, tuple[ScalingLaw, pd.DataFrame]], metric: str) -> Figure:
    """Two (or more) studies: the fitted metric along each study's compute-optimal frontier against training
    FLOPs on one axis, each study's run budgets marked, and the fitted exponents side by side."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    lowest = min(float(points["flops"].min()) for _, points in studies.values())
    highest = max(float(points["flops"].max()) for _, points in studies.values())
    budgets = np.geomspace(lowest / 3, highest * 30, 60)
    width = 0.8 / len(studies)
    for k, (name, (law, points)) in enumerate(studies.items()):
        colour = f"C{k}"
        ratio = (points["flops"] / (points["n_params"] * points["dataset_size"])).median()
        n = np.geomspace(law.domain_["n"][0] / 100, law.domain_["n"][1] * 100, 200)
        best = [
            np.min(law.predict(n=n, d=c / (ratio * n)))
            if not law.higher_is_better
            else np.max(law.predict(n=n, d=c / (ratio * n)))
            for c in budgets
        ]
        left.plot(budgets, best, color=colour, lw=2, label=f"{name}: best {metric} at C")
        left.scatter(points["flops"], points["value"], color=colour, s=16, alpha=0.6)
        left.axvspan(points["flops"].min(), points["flops"].max(), color=colour, alpha=0.07)
        names = [p for p in ("alpha", "beta") if p in law.params_]
        values = [law.params_[p] for p in names]
        ci = law.ci_ or {}
        errors = np.array(
            [
                [values[i] - ci[p][0], ci[p][1] - values[i]] if p in ci and None not in ci[p] else [0, 0]
                for i, p in enumerate(names)
            ]
        ).T
        right.bar(np.arange(len(names)) + k * width, values, width, yerr=errors, color=colour, label=name, capsize=3)
        right.set_xticks(np.arange(len(names)) + width * (len(studies) - 1) / 2, names)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="training FLOPs C",
        ylabel=metric,
        title="fitted laws on a shared compute axis (shaded: each study's runs)",
    )
    left.legend(fontsize=7)
    levels = ", ".join(sorted({percent(law.ci_level) for law, _ in studies.values()}))
    right.set(ylabel="exponent", title=f"fitted exponents ({levels} intervals)")
    right.legend(fontsize=7)
    return fig
