"""The self-contained HTML report: figures embedded as PNG data URIs (SVG copies beside the page), tables,
laws with intervals, warnings and the data, readable offline. Every user-supplied string is escaped."""

from __future__ import annotations

import base64
import io
import json
import warnings
from functools import partial
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scalinglab.analysis import Analysis
from scalinglab.fit.law import ScalingLaw
from scalinglab.format import fmt, percent
from scalinglab.report import figures
from scalinglab.report.hparams import add_hparams_section
from scalinglab.report.summary import summary
from scalinglab.report.two_step import add_two_step_section
from scalinglab.report.verdict import verdict

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; } th { background: #f5f5f5; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0; }
.warning { background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.3rem 0.6rem; margin: 0.3rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, float_format=partial(fmt, digits=4), border=0, na_rep="")


class Page:
    def __init__(self, output: Path, title: str) -> None:
        self.output = output
        self.parts: list[str] = [f"<h1>{escape(title)}</h1>"]
        (output / "figures").mkdir(parents=True, exist_ok=True)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{escape(text)}</h2>")

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{escape(text)}</p>")

    def table(self, frame: pd.DataFrame) -> None:
        self.parts.append(_table(frame))

    def warning(self, text: str) -> None:
        self.parts.append(f'<div class="warning">{escape(text)}</div>')

    def figure(self, name: str, fig: Figure, caption: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        fig.savefig(self.output / "figures" / f"{name}.png", dpi=160)
        fig.savefig(self.output / "figures" / f"{name}.svg")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode()
        self.parts.append(
            f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{escape(caption)} (<a href="figures/{name}.svg">SVG</a>)</figcaption></figure>'
        )

    def data_link(self, name: str, frame: pd.DataFrame, label: str) -> None:
        csv = frame.to_csv(index=False)
        (self.output / name).write_text(csv)
        encoded = base64.b64encode(csv.encode()).decode()
        self.parts.append(
            f'<p><a download="{escape(name)}" href="data:text/csv;base64,{encoded}">{escape(label)}</a>'
            f" ({len(frame)} rows; also written to <code>{escape(name)}</code>)</p>"
        )

    def write(self, title: str) -> Path:
        html = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(self.parts) + "\n</body></html>\n"
        )
        path = self.output / "index.html"
        tmp = path.with_name("index.html.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
        return path


def _law_table(analysis: Analysis) -> pd.DataFrame:
    law = analysis.law
    ci = law.ci_ or {}
    se = law.se_ or {}
    level = percent(law.ci_level)
    return pd.DataFrame(
        [
            {
                "parameter": k,
                "estimate": v,
                f"lower {level}": ci.get(k, (None, None))[0],
                f"upper {level}": ci.get(k, (None, None))[1],
                "identified": "at a bound"
                if k in getattr(law, "at_bounds_", [])
                else "no"
                if k in law.not_identified_
                else "yes",
                "bootstrap SE": se.get(k),
            }
            for k, v in law.params_.items()
        ]
    )


def write_report(analysis: Analysis, output: str | Path) -> Path:
    """Write `output/index.html` (and figures/, observations.csv, summary.json) for one analysed study;
    fills `analysis.verdict` with the sentences at the top of the page."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    page = Page(output, analysis.title)
    with warnings.catch_warnings():  # the figures draw extrapolation dashed instead of warning per point
        warnings.simplefilter("ignore")
        analysis.verdict = verdict(analysis)  # from the law, profile and intervals this page shows
        _verdict(page, analysis)
        _overview(page, analysis)
        if analysis.law is not None:
            _law_section(page, analysis)
        if {"model_scale", "data_scale"} <= set(analysis.final.columns):
            _scales_section(page, analysis)
        if analysis.optimal is not None:
            _optimal_section(page, analysis)
        if analysis.suggestions is not None:
            _next_runs_section(page, analysis)
        add_two_step_section(page, analysis)
        add_hparams_section(page, analysis)
        _curves_section(page, analysis)
        _data_section(page, analysis)
    (output / "summary.json").write_text(json.dumps(summary(analysis), indent=2) + "\n")
    return page.write(analysis.title)


def _curves_section(page: Page, analysis: Analysis) -> None:
    """A study folder's schedule-aware law per model and its backtest from the shorter runs."""
    if not analysis.curves:
        return
    page.heading("Loss curves under the schedule")
    page.text(
        f"Per model, L(s) = L0 + A S1^-alpha - C S2 (Tissue et al. 2024) fitted on every checkpoint of "
        f"{analysis.metric}, with S1 and S2 the learning-rate and annealing areas of each run's own schedule, "
        "rebuilt from the study's config. Backtest: fitted on the runs shorter than the model's longest, the "
        "longest run's final point predicted (worst error over its seeds). A parameter at its bound says the "
        "curves do not locate it, and predictions beyond them are not to be trusted. 95% intervals: summary.json."
    )
    rows = pd.DataFrame(analysis.curves)
    page.table(rows[[c for c in rows.columns if not c.endswith(("_lo", "_hi"))]].fillna(""))


def _verdict(page: Page, analysis: Analysis) -> None:
    page.heading("Verdict")
    page.parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in analysis.verdict) + "</ul>")


def _overview(page: Page, analysis: Analysis) -> None:
    direction = "higher is better" if analysis.higher_is_better else "lower is better"
    runs = analysis.final["run_id"].nunique() if "run_id" in analysis.final else len(analysis.final)
    page.text(
        f"Source: {analysis.source}. Metric: {analysis.metric} ({direction}), split: {analysis.split or 'all'}; "
        f"{runs} runs, {len(analysis.observations)} observation rows. Improvements are in % with positive = "
        "better, whichever way the metric runs. Machine-readable summary: summary.json."
    )
    _savings(page, analysis)
    if analysis.warnings:
        page.heading("Warnings")
        for warning in analysis.warnings:
            page.warning(warning)


def _savings(page: Page, analysis: Analysis) -> None:
    """The compute a study's cooldown branches or halving search saved, when it has either."""
    if analysis.branches:
        saved = analysis.branches
        page.text(
            f"Cooldown branches: {saved['branches']:.0f} cells cooled down from their model size's trunk run; "
            f"training took {saved['flops_trained']:.3g} FLOPs (each trunk once) against {saved['flops_in_full']:.3g} "
            f"counted in full per cell, {saved['saved']:.0%} saved."
        )
    if analysis.halving:
        done = analysis.halving
        page.text(
            f"Successive halving: {done['pruned']:.0f} of {done['runs']:.0f} trials stopped early and left out of "
            f"this analysis; training took {done['flops_trained']:.3g} FLOPs against {done['flops_in_full']:.3g} for "
            f"the full grid, {done['saved']:.0%} saved."
        )


def fit_target(law: ScalingLaw, metric: str) -> str:
    """What the law is fitted on, in words: "log minADE", or "log(1 - mAP)" for a higher-is-better metric."""
    return f"log({law.ceiling:g} - {metric})" if law.higher_is_better else f"log {metric}"


def _law_section(page: Page, analysis: Analysis) -> None:
    law, metric = analysis.law, analysis.metric
    page.heading(f"Performance law: {law.form_.formula}")
    if law.selection_ is not None:
        sel = law.selection_
        page.text(f"Form selection by {sel.method}: {sel.choice} ({sel.reason}).")
        page.table(selection_table(sel))
    intervals = {
        "profile": f"{percent(law.ci_level)} profile-likelihood intervals (open where the data do not bound a side)",
        "bootstrap": f"{percent(law.ci_level)} intervals from bootstrap refits over runs",
    }.get(law.intervals, "no intervals")
    points = (
        "every checkpoint of every run"
        if analysis.all_points
        else "the final point of each run (--all-points fits every checkpoint)"
    )
    page.text(
        f"Fitted on {points}: {law.n_points_} points; summed {law.loss_function().kind} loss "
        f"on {fit_target(law, metric)}, {law.n_starts_} starts; {intervals}."
    )
    page.table(_law_table(analysis))
    if law.form_.inputs != ("n", "d"):
        page.text(f"The {law.form_.name} form is a law in {', '.join(law.form_.inputs)}: no L(N, D) figures.")
        return
    page.figure(
        "law_contour",
        figures.law_contour(law, analysis.final, metric, analysis.profile),
        f"Fitted {metric}(N, D) at evenly spaced levels with the observed runs, the iso-metric profile and its "
        "cheapest point; dashed: outside the fitted range",
    )
    p = analysis.profile
    if p is not None:
        goal = f"{percent(p.improvement)} better than" if p.improvement is not None else "a target set against"
        page.text(
            f"Iso-metric profile: {metric} = {p.target:.4g}, {goal} the law at the reference run "
            f"(N = {p.reference['n']:.4g}, D = {p.reference['d']:.4g}). Cheapest point on it with "
            f"C = {p.flops_per_param_sample:g}ND (the red diamond): N = {p.cheapest['n']:.4g}, "
            f"D = {p.cheapest['d']:.4g} ({p.multipliers['flops']:.3g}x the reference's compute)."
        )
    if analysis.costs is not None:
        page.heading("Cost of improvement")
        page.table(analysis.costs)
    page.figure(
        "diagnostics",
        figures.diagnostics_figure(law, analysis.final.copy(), metric),
        "Fit diagnostics: predicted vs observed and log(observed / predicted) against N, D and C",
    )
    if analysis.train_law is not None and analysis.train_final is not None:
        page.heading("Train and eval laws")
        laws = {"train": (analysis.train_law, analysis.train_final), analysis.split or "eval": (law, analysis.final)}
        page.figure(
            "train_eval",
            figures.train_eval_figure(laws, metric),
            f"The {law.form_.name} law fitted on the train and on the {analysis.split} split, side by side",
        )
        rows = [{"split": split, **fitted.params_} for split, (fitted, _) in laws.items()]
        page.table(pd.DataFrame(rows))


def selection_table(selection) -> pd.DataFrame:
    """The form-selection table: every candidate's held-out error, the chosen form marked."""
    table = selection.table
    names = ("form", "free_params", "extrap_folds", "extrap_error", "extrap_log_error", "extrap_se", "folds")
    columns = [c for c in (*names, "cv_error", "cv_log_error", "cv_se", "at_bounds") if c in table]
    frame = table[columns].copy()
    if "at_bounds" in frame:
        frame["at_bounds"] = frame["at_bounds"].fillna("")
    frame.insert(0, "chosen", np.where(table["form"] == selection.choice, "*", ""))
    return frame.rename(
        columns={
            "extrap_folds": "forward folds",
            "extrap_error": "median rel. error beyond the cuts",
            "extrap_log_error": "mean |log error| beyond",
            "extrap_se": "SE beyond",
            "folds": "leave-one-out folds",
            "cv_error": "median rel. held-out error",
            "cv_log_error": "mean |log error|",
            "cv_se": "SE",
        }
    )


def _scales_section(page: Page, analysis: Analysis) -> None:
    page.heading("Improvement per model and data scale")
    page.figure(
        "heatmap",
        figures.relative_heatmap(analysis.final, analysis.metric, analysis.higher_is_better),
        f"Improvement of {analysis.metric} (%, positive = better) per model scale x data scale over the "
        "smallest model's smallest data scale",
    )
    page.figure(
        "metric_by_scale",
        figures.metric_by_scale(analysis.final, analysis.metric, analysis.higher_is_better),
        f"Final {analysis.metric} against model scale, one line per data scale",
    )


def _optimal_section(page: Page, analysis: Analysis) -> None:
    optimal, metric = analysis.optimal, analysis.metric
    scale = analysis.envelope_scale
    page.heading("Optimal-model laws N_opt(C), S_opt(C), D_opt(C)")
    interpolated = optimal.curves_.interpolated is not None
    between = "; between two ends a curve is interpolated in log FLOPs" if interpolated else ""
    page.text(f"The envelope and IsoFLOP read {analysis.envelope_reads} (--data-scale{between}).")
    page.table(optimal.exponents_)
    usage = getattr(optimal, "usage_table_", None)
    if usage is not None:
        page.text("What each method used (FLOPs range, points, and the points it dropped and why):")
        page.table(usage)
    agreement = getattr(optimal, "agreement_", None)
    if agreement is not None and not agreement.table.empty:
        page.text("Do the methods agree? (intervals compared; a consensus where they overlap)")
        page.table(agreement.table)
    marked = f"; dotted: the compute of {', '.join(analysis.marks)}" if analysis.marks else ""
    page.figure(
        "envelope",
        figures.envelope_figure(optimal, metric, f"data {scale:g}X" if scale is not None else "", analysis.marks),
        f"{metric} against training FLOPs per run with the envelope drawn along the runs{marked}; compute-optimal laws",
    )
    budget = float(optimal.curves_.c.max())
    page.text(f"At the largest budget observed ({budget:.4g} FLOPs):")
    page.table(optimal.predict(budget))
    page.heading("Near-optimal configurations")
    smoothed = (
        " Their value is the run's smoothed curve at that checkpoint (what the robust envelope reads), not the raw"
        " observation."
        if optimal.envelope == "robust"
        else ""
    )
    page.text(f"Checkpoints within {optimal.tolerance:.0%} of the envelope at their compute, the first 40.{smoothed}")
    page.table(optimal.near_optimal_.head(40))


def _next_runs_section(page: Page, analysis: Analysis) -> None:
    found = analysis.suggestions
    current = found.current
    page.heading("What to run next")
    page.text(
        f"Decision: {found.quantity}; its 95% interval now spans {current['width']:.3g} {found.width_unit} "
        f"({current['lower']:.4g} .. {current['upper']:.4g}). Each candidate run is scored by the expected "
        f"shrinkage of that interval per FLOP (the linearised variance of the decision with the candidate added, "
        f"averaged over {found.replicas} bootstrap replicas' parameters; `scalinglab suggest`, "
        "docs/compute_optimal.md). Best first:"
    )
    columns = ["rank", "n_params", "dataset_size", "flops", "current_width", "expected_width", "score"]
    page.table(found.top(10)[[c for c in columns if c in found.table.columns]])


def _data_section(page: Page, analysis: Analysis) -> None:
    page.heading("Data")
    columns = [
        c
        for c in ("run_id", "model_scale", "data_scale", "n_params", "dataset_size", "steps", "flops", "value")
        if c in analysis.final.columns
    ]
    page.table(analysis.final[columns].sort_values(columns[:3]))
    page.data_link("observations.csv", analysis.observations, "all observations (CSV)")


def write_comparison(analyses: dict[str, Analysis], output: str | Path, metric: str) -> Path:
    """Write `output/index.html` comparing studies: laws side by side on a shared compute axis."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    title = f"Comparison of {', '.join(analyses)}: {metric}"
    page = Page(output, title)
    fitted = {name: (a.law, a.final) for name, a in analyses.items() if a.law is not None}
    for name, analysis in analyses.items():
        page.text(f"{name}: {analysis.source}, {len(analysis.final)} runs.")
        for warning in analysis.warnings:
            page.warning(f"{name}: {warning}")
    if len(fitted) >= 2:
        page.figure(
            "comparison",
            figures.comparison_figure(fitted, metric),
            f"Fitted {metric} laws of each study on a shared FLOPs axis, and their exponents",
        )
    rows = []
    for name, analysis in analyses.items():
        if analysis.law is not None:
            rows += [{"study": name, **row} for row in _law_table(analysis).to_dict("records")]
    if rows:
        page.heading("Fitted laws")
        page.table(pd.DataFrame(rows))
    for name, analysis in analyses.items():
        if analysis.optimal is not None:
            page.heading(f"{name}: optimal-model laws")
            page.table(analysis.optimal.exponents_)
    return page.write(title)
