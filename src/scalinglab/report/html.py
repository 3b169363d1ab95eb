"""The self-contained HTML report: figures embedded as PNG data URIs (SVG copies beside the page), tables,
laws with intervals, warnings and the data, readable offline. Every user-supplied string is escaped."""

from __future__ import annotations

import base64
import io
from functools import partial
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from scalinglab.cli.render import fmt, percent
from scalinglab.report import figures
from scalinglab.report.analysis import Analysis

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
                "identified": "no" if k in law.not_identified_ else "yes",
                "bootstrap SE": se.get(k),
            }
            for k, v in law.params_.items()
        ]
    )


def write_report(analysis: Analysis, output: str | Path) -> Path:
    """Write `output/index.html` (and figures/, observations.csv) for one analysed study."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    page = Page(output, analysis.title)
    _overview(page, analysis)
    if analysis.law is not None:
        _law_section(page, analysis)
    if {"model_scale", "data_scale"} <= set(analysis.final.columns):
        page.heading("Relative change per model and data scale")
        page.figure(
            "heatmap",
            figures.relative_heatmap(analysis.final, analysis.metric, analysis.higher_is_better),
            f"Relative change of {analysis.metric} per model scale x data scale against 1X/1X",
        )
    if analysis.optimal is not None:
        _optimal_section(page, analysis)
    _data_section(page, analysis)
    return page.write(analysis.title)


def _overview(page: Page, analysis: Analysis) -> None:
    direction = "higher is better" if analysis.higher_is_better else "lower is better"
    runs = analysis.final["run_id"].nunique() if "run_id" in analysis.final else len(analysis.final)
    page.text(
        f"Source: {analysis.source}. Metric: {analysis.metric} ({direction}), split: {analysis.split or 'all'}; "
        f"{runs} runs, {len(analysis.observations)} observation rows."
    )
    if analysis.warnings:
        page.heading("Warnings")
        for warning in analysis.warnings:
            page.warning(warning)


def _law_section(page: Page, analysis: Analysis) -> None:
    law, metric = analysis.law, analysis.metric
    page.heading("Performance law L(N, D) = E + A / N^alpha + B / D^beta")
    intervals = (
        f"{percent(law.ci_level)} intervals from bootstrap refits over runs"
        if law.bootstrap_theta_ is not None
        else "no intervals (no bootstrap refits)"
    )
    page.text(
        f"Fitted on the final point of each run ({law.n_points_} points), summed {law.loss_function().kind} loss "
        f"on log {metric}, {law.n_starts_} starts; {intervals}."
    )
    page.table(_law_table(analysis))
    page.figure(
        "law_contour",
        figures.law_contour(law, analysis.final, metric, analysis.profile),
        f"Fitted {metric}(N, D) with the observed runs and the iso-metric profile",
    )
    p = analysis.profile
    if p is not None:
        goal = f"{percent(p.improvement)} better than" if p.improvement is not None else "a target set against"
        page.text(
            f"Iso-metric profile: {metric} = {p.target:.4g}, {goal} the law at the reference run "
            f"(N = {p.reference['n']:.4g}, D = {p.reference['d']:.4g}). Cheapest point on it with "
            f"C = {p.flops_per_param_sample:g}ND: N = {p.cheapest['n']:.4g}, D = {p.cheapest['d']:.4g} "
            f"({p.multipliers['flops']:.3g}x the reference's compute)."
        )
    if analysis.costs is not None:
        page.heading("Cost of improvement")
        page.table(analysis.costs)
    page.figure(
        "diagnostics",
        figures.diagnostics_figure(law, analysis.final.copy(), metric),
        "Fit diagnostics: predicted vs observed and log residuals against N, D and C",
    )


def _optimal_section(page: Page, analysis: Analysis) -> None:
    optimal, metric = analysis.optimal, analysis.metric
    page.heading("Optimal-model laws N_opt(C), S_opt(C), D_opt(C)")
    page.table(optimal.exponents_)
    page.figure(
        "envelope",
        figures.envelope_figure(optimal, metric),
        f"{metric} against training FLOPs per run with the envelope; compute-optimal laws",
    )
    budget = float(analysis.final["flops"].max())
    page.text(f"At the largest budget observed ({budget:.4g} FLOPs):")
    page.table(optimal.predict(budget))
    page.heading("Near-optimal configurations")
    page.table(optimal.near_optimal_.head(40))


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
