"""Report pieces for task metrics through a two-step law and for laws compared across eval sets.

- `link_figure`: step 2, the metric against the intermediate (the loss) at every checkpoint, coloured by N,
  with the fitted link;
- `chained_figure`: the chained prediction link(law(N, D)) beside the direct law on the metric, with the
  held-out points of a direct-vs-two-step backtest when given;
- `backtest_table`, `eval_set_table`, `exponent_differences`: the backtest scores, each eval set's law
  (exponents with intervals) and sentences naming where two sets' exponents differ beyond their intervals;
- `two_step_section`: all of the above from an observations table, for the HTML report to lay out.

Every figure is a matplotlib Figure (Agg backend); nothing is shown.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scalinglab.errors import UserError
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.two_step import TwoStepData, TwoStepLaw
from scalinglab.report.style import EXTRAPOLATED, SIZE_CMAP, legend_below, number, plt, tidy_log_axis

EXPONENTS = ("alpha", "beta", "alphaN", "alphaD", "c")


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
    ax = axes[0][0]
    names = law.step1_.form_.inputs
    first = names[0]
    lo, hi = law.step1_.domain_[first]
    grid = np.geomspace(lo / 2, hi * 8, 80)
    inputs = {first: grid}
    for other in names[1:]:
        inputs[other] = np.full(grid.size, law.step1_.domain_[other][1])
    chained = _quiet(law.predict, **inputs)
    inside = (grid >= lo) & (grid <= hi)
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
    low, high = float(np.min(data.y)), float(np.max(data.y))
    if law.higher_is_better:
        ax.set_ylim(max(0.0, low - 0.2 * (high - low)), min(law.ceiling, high + 0.2 * (high - low)))
    else:
        ax.set_yscale("log")
        ax.set_ylim(low / 2, high * 2)  # a band that leaves the metric's range is cut at the axes
        tidy_log_axis(ax.yaxis)
    tidy_log_axis(ax.xaxis)
    legend_below(ax, 2)
    if held_out is not None:
        right = axes[0][1]
        colours = ("tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red")
        for k, (method, rows) in enumerate(held_out.groupby("method", sort=True)):
            colour = colours[k % len(colours)]
            err = np.vstack([rows["predicted"] - rows["lower"], rows["upper"] - rows["predicted"]])
            right.errorbar(
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
        right.plot(edge, edge, color="grey", lw=1, ls=":")
        right.set(
            xlabel=f"observed {metric}", ylabel=f"predicted {metric}", title="held-out runs: predicted vs observed"
        )
        legend_below(right, 2)
    return fig


def backtest_table(result: Any) -> pd.DataFrame:
    """The direct-vs-two-step backtest scores as a table (method, MAE, RMSE, bias, coverage, points)."""
    columns = ["rank", "method", "mae", "rmse", "bias", "coverage", "n_test"]
    return result.scores[columns].rename(columns={"n_test": "held-out points"})


def eval_set_laws(
    obs: pd.DataFrame, metric: str, splits: list[str], form: str = "chinchilla", **law_options: Any
) -> dict[str, ScalingLaw]:
    """The law of `metric` on each eval set (split), same form and options; a set that cannot be fitted is left out."""
    laws = {}
    for split in splits:
        try:
            laws[split] = ScalingLaw(form=form, **law_options).fit(obs, metric=metric, split=split)
        except UserError:
            continue
    return laws


def eval_set_table(laws: dict[str, ScalingLaw]) -> pd.DataFrame:
    """One row per eval set: every exponent with its interval (open sides said in words)."""
    from scalinglab.cli.render import interval_text

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


def exponent_differences(laws: dict[str, ScalingLaw]) -> list[str]:
    """Sentences naming each exponent where two eval sets' intervals do not overlap (an open side never
    separates); the reader learns where the law does not carry over from one set to another."""
    out = []
    names = list(laws)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ci_a, ci_b = laws[a].ci_ or {}, laws[b].ci_ or {}
            for p in EXPONENTS:
                if p not in ci_a or p not in ci_b:
                    continue
                (lo_a, hi_a), (lo_b, hi_b) = ci_a[p], ci_b[p]
                apart = (hi_a is not None and lo_b is not None and hi_a < lo_b) or (
                    hi_b is not None and lo_a is not None and hi_b < lo_a
                )
                if apart:
                    out.append(
                        f"{p} differs between {a} ({number(laws[a].params_[p])}) and {b} "
                        f"({number(laws[b].params_[p])}) beyond their {laws[a].ci_level:.0%} intervals"
                    )
    if not out and len(names) > 1:
        out.append(f"no exponent differs beyond its interval across {', '.join(names)}")
    return out


@dataclass
class TwoStepSection:
    """What the report shows for a task metric through the loss: figures, tables and sentences."""

    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def two_step_section(
    obs: pd.DataFrame,
    metric: str,
    higher_is_better: bool,
    via: str = "loss",
    split: str = "eval",
    form: str = "chinchilla",
    holdout: str = "largest:1",
    bootstrap: int = 100,
    seed: int = 0,
) -> TwoStepSection | None:
    """The two-step pieces of a study's observations: link and chained figures, the direct-vs-two-step
    backtest, and the metric's law on each eval set compared. None when the table has no `via` rows."""
    from scalinglab.fit.backtest import backtest_via
    from scalinglab.fit.two_step import two_step_data

    if "metric" not in obs or via not in set(obs["metric"].astype(str)) or metric == via:
        return None
    section = TwoStepSection()
    data = two_step_data(obs, ("n", "d"), via, metric=metric, split=split, final_only=True)
    law = TwoStepLaw(form=form, higher_is_better=higher_is_better, bootstrap=bootstrap, seed=seed, intervals=None)
    law.fit(data)
    direct = ScalingLaw(form=form, higher_is_better=higher_is_better, intervals=None)
    direct.fit(obs, metric=metric, split=split)
    held_out = None
    try:
        result = backtest_via(
            obs,
            ("n", "d"),
            via,
            holdout,
            [form],
            metric=metric,
            split=split,
            higher_is_better=higher_is_better,
            bootstrap=bootstrap,
            seed=seed,
        )
        held_out = result.points
        section.tables["direct vs two-step backtest"] = backtest_table(result)
        section.notes.append(result.recommendation)
    except UserError as exc:
        section.notes.append(f"no direct-vs-two-step backtest: {exc}")
    section.figures["link"] = link_figure(law, data, metric)
    section.figures["chained"] = chained_figure(law, direct, data, metric, held_out)
    if law.link_selection_ is not None:
        section.tables["link selection"] = law.link_selection_.table
        section.notes.append(f"link: {law.link_selection_.choice}: {law.link_selection_.reason}")
    splits = sorted(s for s in set(obs["split"].astype(str)) if s == "eval" or s.startswith("eval:"))
    if len(splits) > 1:
        laws = eval_set_laws(obs, metric, splits, form, higher_is_better=higher_is_better)
        section.tables["laws across eval sets"] = eval_set_table(laws)
        section.notes += exponent_differences(laws)
    return section


def _same_as_loss(obs: pd.DataFrame, metric: str, split: str, rtol: float = 1e-5) -> str:
    """Why a two-step law would add nothing ("" when it would): the metric equals the eval loss at every
    checkpoint (a one-mode behaviour model, whose loss is its ADE), so the link is the identity."""
    rows = obs[obs["split"].astype(str) == split] if "split" in obs else obs
    keys = [c for c in ("run_id", "steps") if c in rows]
    if not keys:
        return ""
    rows = rows[rows["metric"].astype(str).isin([metric, "loss"])]
    pairs = rows.pivot_table(index=keys, columns="metric", values="value", aggfunc="first").dropna()
    if metric not in pairs or "loss" not in pairs or pairs.empty:
        return ""
    gap = float(np.max(np.abs(pairs[metric] / pairs["loss"] - 1.0)))
    if gap > rtol:
        return ""
    return (
        f"{metric} equals the eval loss at all {len(pairs)} checkpoints (largest relative difference {gap:.1g}), "
        "so predicting it through the loss adds nothing: the law above is the two-step law"
    )


def fit_two_step_section(analysis: Any) -> None:
    """Fill `analysis.two_step` (or `analysis.two_step_error`) for a task metric beside an eval loss; called
    by `report.analysis.analyse`, so the page only draws what the analysis computed."""
    obs, metric = analysis.observations, analysis.metric
    if "metric" not in obs or metric == "loss" or "loss" not in set(obs["metric"].astype(str)):
        return
    same = _same_as_loss(obs, metric, analysis.split or "eval")
    if same:
        analysis.two_step_error = same
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis.two_step = two_step_section(obs, metric, analysis.higher_is_better, split=analysis.split or "eval")
    except UserError as exc:
        analysis.two_step_error = str(exc)


def add_two_step_section(page: Any, analysis: Any) -> None:
    """The report's section for a task metric through the loss, on an `html.Page` for an `analysis.Analysis`:
    nothing when the study has no eval loss beside the metric; a warning line when the fits failed."""
    metric, section = analysis.metric, analysis.two_step
    if analysis.two_step_error is not None:
        page.heading(f"{metric} through the loss")
        page.warning(f"no two-step law: {analysis.two_step_error}")
        return
    if section is None:
        return
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
