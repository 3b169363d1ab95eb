"""`scalinglab report` and `scalinglab compare`: the self-contained HTML report of one or two studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli.render import check_count, console
from scalinglab.errors import UserError

Opt = typer.Option


def report(
    source: Annotated[Path, typer.Argument(help="a study directory or an observations file (CSV, TSV, parquet)")],
    output: Annotated[Path, Opt("-o", "--output", help="folder for index.html and the figures")] = Path("report"),
    metric: Annotated[str, Opt(help="the metric to analyse (minADE, mAP, loss, ...)")] = "loss",
    split: Annotated[str, Opt(help="the split to analyse")] = "eval",
    higher_is_better: Annotated[
        bool | None, Opt("--higher-is-better/--lower-is-better", help="default: the table's own flag")
    ] = None,
    improvement: Annotated[
        float, Opt(help="the iso-metric profile's target improvement (0.01 = 1%); below 1 if lower is better")
    ] = 0.01,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the intervals (0: none)")] = 200,
    title: Annotated[str | None, Opt(help="the report's title")] = None,
) -> None:
    """Fit the laws on a study and write DIR/index.html: figures, laws with intervals, costs, warnings, data."""
    from scalinglab.report.analysis import analyse, load_observations
    from scalinglab.report.html import write_report

    check_count(bootstrap, "--bootstrap")
    if not improvement > 0:
        raise UserError(f"--improvement must be > 0 (0.01 is 1%), got {improvement:g}")
    obs, name = load_observations(source)
    with console.status("fitting the laws"):
        analysis = analyse(obs, name, metric, split, higher_is_better, improvement, bootstrap, title)
        page = write_report(analysis, output)
    for warning in analysis.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"report: {page}")


def compare(
    first: Annotated[Path, typer.Argument(help="study directory or observations file A")],
    second: Annotated[Path, typer.Argument(help="study directory or observations file B")],
    output: Annotated[Path, Opt("-o", "--output", help="folder for index.html and the figures")] = Path("compare"),
    metric: Annotated[str, Opt(help="the metric to compare")] = "loss",
    split: Annotated[str, Opt(help="the split to compare")] = "eval",
    names: Annotated[str | None, Opt(help="two labels, comma-separated [A,B]")] = None,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the intervals (0: none)")] = 200,
) -> None:
    """Two studies on one page: their fitted laws and exponents side by side on a shared compute axis."""
    from scalinglab.report.analysis import analyse, load_observations
    from scalinglab.report.html import write_comparison

    check_count(bootstrap, "--bootstrap")
    labels = names.split(",") if names else [first.name or "A", second.name or "B"]
    if len(labels) != 2 or labels[0] == labels[1]:
        raise UserError("--names: give two different labels, comma-separated")
    analyses = []
    with console.status("fitting the laws"):
        for label, path in zip(labels, (first, second), strict=True):
            obs, name = load_observations(path)
            analyses.append(analyse(obs, name, metric, split, bootstrap=bootstrap, title=label))
        page = write_comparison(dict(zip(labels, analyses, strict=True)), output, metric)
    console.print(f"report: {page}")
