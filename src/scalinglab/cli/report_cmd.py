"""`scalinglab report` and `scalinglab compare`: the self-contained HTML report of one or two studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli.options import Columns, Trials, grouped
from scalinglab.cli.render import check_count, console, err_console, group_warnings, print_json
from scalinglab.errors import UserError

Opt = typer.Option


def _print_warnings(messages: list[str]) -> None:
    """One line per kind of warning on stderr; the full list is in the report and in --json."""
    for line in group_warnings(messages):
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)


def _require_results(analysis, source: Path) -> None:
    """A report with neither a law nor compute-optimal laws produced nothing it was asked for: exit 2."""
    if analysis.law is None and analysis.optimal is None:
        reasons = "; ".join(w for w in analysis.warnings if "not fitted" in w) or "no law could be fitted"
        raise UserError(f"{source}: nothing to report: {reasons}")


def _marks(marks: list[str] | None) -> dict:
    """--mark [NAME=]PATH: other studies whose compute the envelope marks."""
    from scalinglab.analysis import load_observations

    out = {}
    for text in marks or []:
        name, _, path = text.rpartition("=") if "=" in text else ("", "", text)
        obs, _ = load_observations(Path(path))
        out[name or Path(path).stem] = obs
    return out


HIGHER = Annotated[bool | None, Opt("--higher-is-better/--lower-is-better", help="default: the table's own flag")]
IMPROVEMENT = Annotated[
    float, Opt(help="the iso-metric profile's target improvement (0.01 = 1%); below 1 if lower is better")
]
FORM = Annotated[str, Opt(help="the L(N, D) form; auto: chosen by leave-one-run-out error")]
ALL_POINTS = Annotated[bool, Opt(help="fit every checkpoint, not only the last of each run")]
DATA_SCALE = Annotated[
    str,
    Opt(
        help=(
            "what the envelope and IsoFLOP read: largest (the runs at the largest data scale; a branch study: "
            "ends), ends (each cell's end, every data scale), all, or a data scale"
        )
    ),
]
MARK = Annotated[
    list[str] | None, Opt(help="[NAME=]PATH of another study whose compute the envelope marks; repeatable")
]
JSON = Annotated[bool, Opt("--json", help="print the summary as JSON (also written to DIR/summary.json)")]


@grouped
def report(
    source: Annotated[Path, typer.Argument(help="a study directory or an observations file (CSV, TSV, parquet)")],
    columns: Columns,
    trials: Trials,
    output: Annotated[Path, Opt("-o", "--output", help="folder for index.html and the figures")] = Path("report"),
    metric: Annotated[str, Opt(help="the metric to analyse (minADE, mAP, loss, ...)")] = "loss",
    split: Annotated[str, Opt(help="the split to analyse")] = "eval",
    higher_is_better: HIGHER = None,
    improvement: IMPROVEMENT = 0.01,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the intervals (0: none)")] = 200,
    title: Annotated[str | None, Opt(help="the report's title")] = None,
    form: FORM = "auto",
    all_points: ALL_POINTS = False,
    data_scale: DATA_SCALE = "largest",
    mark: MARK = None,
    as_json: JSON = False,
) -> None:
    """Fit the laws on a study and write DIR/index.html: verdict, figures, laws with intervals, costs, warnings."""
    from scalinglab.analysis import analyse, load_observations
    from scalinglab.report.html import write_report
    from scalinglab.report.summary import summary

    _check(bootstrap, improvement, data_scale, form)
    obs, name = load_observations(source)
    obs, cols = columns.derived(*columns.prepare(obs, name), name)
    marks = _marks(mark)
    options = {"form": form, "all_points": all_points, "data_scale": data_scale, "marks": marks, "columns": cols}
    options["trials"] = trials.choice()
    with console.status("fitting the laws"):
        analysis = analyse(obs, name, metric, split, higher_is_better, improvement, bootstrap, title, **options)
        _require_results(analysis, source)
        page = write_report(analysis, output)
    if as_json:
        return print_json(summary(analysis))
    for sentence in analysis.verdict:
        console.print(f"- {sentence}", highlight=False)
    _print_warnings(analysis.warnings)
    console.print(f"report: {page}")


def _check(bootstrap: int, improvement: float, data_scale: str, form: str) -> None:
    """One line naming the first report option that cannot be used."""
    check_count(bootstrap, "--bootstrap")
    if not improvement > 0:
        raise UserError(f"--improvement must be > 0 (0.01 is 1%), got {improvement:g}")
    if data_scale not in ("largest", "all", "ends"):
        try:
            float(data_scale)
        except ValueError:
            raise UserError(f"--data-scale: '{data_scale}' is not a number, 'largest', 'ends' or 'all'") from None
    if form != "auto":
        from scalinglab.fit.forms import get_form

        try:
            get_form(form)
        except UserError as exc:
            raise UserError(f"--form: {exc}") from None


def compare(
    first: Annotated[Path, typer.Argument(help="study directory or observations file A")],
    second: Annotated[Path, typer.Argument(help="study directory or observations file B")],
    output: Annotated[Path, Opt("-o", "--output", help="folder for index.html and the figures")] = Path("compare"),
    metric: Annotated[str, Opt(help="the metric to compare")] = "loss",
    split: Annotated[str, Opt(help="the split to compare")] = "eval",
    names: Annotated[str | None, Opt(help="two labels, comma-separated [A,B]")] = None,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the intervals (0: none)")] = 200,
    as_json: Annotated[bool, Opt("--json", help="print the page, headline numbers and warnings as JSON")] = False,
) -> None:
    """Two studies on one page: their fitted laws and exponents side by side on a shared compute axis."""
    from scalinglab.analysis import analyse, load_observations
    from scalinglab.report.html import write_comparison

    check_count(bootstrap, "--bootstrap")
    labels = names.split(",") if names else [first.name or "A", second.name or "B"]
    if len(labels) != 2 or labels[0] == labels[1]:
        raise UserError("--names: give two different labels, comma-separated")
    analyses = []
    with console.status("fitting the laws"):
        for label, path in zip(labels, (first, second), strict=True):
            obs, name = load_observations(path)
            # one form for both, so that their exponents compare
            analyses.append(analyse(obs, name, metric, split, bootstrap=bootstrap, title=label, form="chinchilla"))
            _require_results(analyses[-1], path)
        page = write_comparison(dict(zip(labels, analyses, strict=True)), output, metric)
    warnings = [f"{label}: {w}" for label, a in zip(labels, analyses, strict=True) for w in a.warnings]
    if as_json:
        from scalinglab.analysis import headline
        from scalinglab.cli.render import print_json

        numbers = {label: headline(a) for label, a in zip(labels, analyses, strict=True)}
        print_json({"report": str(page), "studies": numbers, "warnings": warnings})
        return
    _print_warnings(warnings)
    console.print(f"report: {page}")
