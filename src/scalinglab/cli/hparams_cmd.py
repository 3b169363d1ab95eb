"""`scalinglab hparams`: the optimal learning rate and batch size as power laws in C and in (N, D), from trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.options import Columns, Direction, Rows, grouped
from scalinglab.cli.render import console, err_console, frame_table, print_json
from scalinglab.errors import UserError, check_level
from scalinglab.format import fmt, percent, short

Opt = typer.Option
HPARAMS = Annotated[
    str | None,
    Opt(
        "--hparams",
        help="comma-separated hyperparameter columns (default: lr, batch_size, ... where they vary within a cell)",
    ),
]
LEVEL = Annotated[float, Opt(help="coverage of the intervals")]
OUTPUT = Annotated[Path | None, Opt("-o", "--output", help="write the laws to this JSON file (a study's lr_law)")]


@grouped
def hparams(
    data: Annotated[Path, typer.Argument(help="observations table with several trials per (N, D) cell")],
    columns: Columns,
    rows: Rows,
    direction: Direction,
    names: HPARAMS = None,
    n_at: Annotated[float | None, Opt(help="predict the optimum for this N (with --d-at)")] = None,
    d_at: Annotated[float | None, Opt(help="predict the optimum for this D (with --n-at)")] = None,
    budget: Annotated[float | None, Opt(help="predict the optimum at this FLOPs budget C")] = None,
    ci_level: LEVEL = 0.95,
    as_json: vocabulary.JSON = False,
    output: OUTPUT = None,
) -> None:
    """Each cell's optimal hyperparameter from a parabola in its log, power laws for it in C and in (N, D) with
    intervals, how much a 2x error costs near the optimum, and the optimum at a new scale."""
    from scalinglab.hparams import tune

    _check(n_at, d_at, budget, ci_level)
    table, cols = columns.read(data)
    wanted = [s.strip() for s in names.split(",") if s.strip()] if names else None
    options = {"higher_is_better": direction.higher_is_better, "level": ci_level, "source": str(data)}
    results = tune(table, wanted, cols, **vars(rows), **options)
    predictions = {t.column: t.predict(n_at, d_at, budget) for t in results}
    summary = {"hparams": {t.column: t.to_dict() | {"predictions": predictions[t.column]} for t in results}}
    if output is not None:
        _save(summary, output)
    if as_json:
        return print_json(summary)
    for tuned in results:
        _show(tuned, predictions[tuned.column], ci_level)


def _check(n: float | None, d: float | None, budget: float | None, level: float) -> None:
    """One line naming the first option that cannot be used."""
    if (n is None) != (d is None):
        raise UserError("--n-at and --d-at go together: the law in (N, D) needs both")
    for value, flag in ((n, "--n-at"), (d, "--d-at"), (budget, "--budget")):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be > 0, got {value:g}")
    check_level("--ci-level", level)


def _save(summary: dict[str, Any], output: Path) -> None:
    """The laws alone, as JSON a study config's `lr_law` reads."""
    laws = {name: entry["laws"] for name, entry in summary["hparams"].items()}
    try:
        output.write_text(json.dumps({"hparam_laws": laws}, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"{output}: cannot be written ({exc.strerror or exc})") from None


def _show(tuned: Any, predictions: dict, level: float) -> None:
    """The cells' optima, the two laws with their exponents' intervals, the sensitivity and the predictions."""
    name = tuned.column
    cells = tuned.optima[["n", "d", "values", "opt", "lo", "hi", "cost_2x_rel", "status"]]
    console.print(frame_table(cells, f"optimal {name} per cell ({percent(level)} intervals)"))
    for law in tuned.laws.values():
        if law is None:
            continue
        terms = " ".join(f"{v.upper()}^{short(e)}" for v, e in law.exponents.items())
        spans = ", ".join(f"{v}: [{short(a)}, {short(b)}]" for v, (a, b) in law.exponent_intervals().items())
        console.print(
            f"{name}* = {fmt(law.scale, 4)} {terms}   exponents {spans}   ({law.cells} cells)", highlight=False
        )
    console.print(f"a 2x error in {name} costs {percent(tuned.cost_2x_rel)} of the metric (median over cells)")
    for p in predictions.values():
        at = ", ".join(f"{k.upper()} = {fmt(v, 4)}" for k, v in p["at"].items())
        console.print(f"at {at}: {name}* = {fmt(p['opt'], 4)} [{fmt(p['lo'], 4)}, {fmt(p['hi'], 4)}]", highlight=False)
    for note in tuned.notes:
        err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
