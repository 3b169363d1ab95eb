"""`scalinglab backtest`: fit forms on the smaller scales, predict the held-out larger ones, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.options import Columns, Direction, Rows, Trials, TwoStep, grouped
from scalinglab.cli.render import check_count, console, frame_table, print_json, records
from scalinglab.errors import UserError
from scalinglab.fit.forms import get_form

Opt = typer.Option
AUTO = "auto"  # fit.backtest.AUTO, kept here so --help does not import the engine
ONE_VAR_FORMS = ["power", "power_offset", "bnsl1", "m4", AUTO]
FORMS_HELP = (
    f"comma-separated forms; {AUTO}: the automatic choice [chinchilla,kaplan; with --x {','.join(ONE_VAR_FORMS)}]"
)


HOLDOUT = Annotated[
    str,
    Opt(
        help="largest:K (the K points largest in N x D), largest-n:K (every point of the K largest model sizes), "
        "frac:F or COLUMN>VALUE"
    ),
]
X = Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms")]
ALL_POINTS = Annotated[bool, Opt(help="use every row, not only the last step of each run")]
BOOTSTRAP = Annotated[int, Opt(help="bootstrap refits for the prediction intervals (0: none)")]


@grouped
def backtest(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet)")],
    columns: Columns,
    rows: Rows,
    direction: Direction,
    two_step: TwoStep,
    trials: Trials,
    holdout: HOLDOUT = "frac:0.2",
    forms: Annotated[str | None, Opt(help=FORMS_HELP)] = None,
    x: X = None,
    all_points: ALL_POINTS = False,
    bootstrap: BOOTSTRAP = 100,
    seed: Annotated[int, Opt(help="seed of the bootstrap")] = 0,
    as_json: vocabulary.JSON = False,
) -> None:
    """Would a law fitted on the small scales have predicted the held-out larger ones? Compare forms."""
    from scalinglab.fit.backtest import backtest as run_backtest
    from scalinglab.fit.backtest import backtest_via, holdout_mask
    from scalinglab.observations import select_fit_data

    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    names, inputs = _forms(forms, x, two_step)
    table, cols = columns.read(data)
    table = trials.apply(table, cols, rows, direction.higher_is_better, str(data))
    cols["x"] = x
    common = {"source": str(data), "final_only": not all_points} | vars(rows) | columns.selection()
    resample = {"bootstrap": bootstrap, "seed": seed}
    if two_step.via is not None:  # direct laws against two-step laws through the intermediate
        from scalinglab.cli.two_step_view import print_via_backtest

        options = {"link": two_step.link, **two_step.fit_options(), **vars(direction), **resample, **common}
        result = backtest_via(table, inputs, holdout=holdout, forms=names, columns=cols, **options)
        return print_via_backtest(result, holdout, as_json)
    fit_data = select_fit_data(table, inputs, cols, **vars(direction), **common)
    mask = holdout_mask(holdout, fit_data, table)
    result = run_backtest(fit_data, mask, names, higher_is_better=False, **resample)
    _show(result, mask, holdout, direction, as_json)


def _forms(text: str | None, x: str | None, two_step: TwoStep) -> tuple[list[str], tuple[str, ...]]:
    """The forms to compare (default: chinchilla and kaplan, or the one-variable forms with --x) and their inputs."""
    names = text.split(",") if text else (ONE_VAR_FORMS if x else ["chinchilla", "kaplan"])
    inputs = {get_form(name).inputs for name in names if name != AUTO}
    if len(inputs) != 1:
        raise UserError(f"--forms mixes laws in different variables: {', '.join(names)}")
    if two_step.via is not None and AUTO in names:
        raise UserError("--via compares given forms; auto is not offered with --via")
    return names, inputs.pop()


def _show(result: Any, mask: Any, holdout: str, direction: Direction, as_json: bool) -> None:
    """The ranking of the forms, their agreement, the recommendation (tables or JSON)."""
    if as_json:
        print_json(
            {
                "holdout": holdout,
                "n_train": int((~mask).sum()),
                "n_test": int(mask.sum()),
                "scores": records(result.scores),
                "agreement": result.agreement.to_dict(),
                "recommendation": result.recommendation,
                "auto": None if result.auto is None else vars(result.auto),
                "warnings": result.warnings,
                "predictions": records(_in_metric_units(result.points, direction.higher_is_better, direction.ceiling)),
            }
        )
        return
    console.print(f"kept {int((~mask).sum())} points, held out {int(mask.sum())} ({holdout})")
    console.print(frame_table(result.scores, "forms ranked by RMSLE on the held-out points"))
    console.print(
        frame_table(result.agreement.reset_index(names="form"), "Spearman correlation of predicted orderings")
    )
    console.print(f"recommended: {result.recommendation}", markup=False, highlight=False)
    if result.auto is not None:
        console.print(f"auto fitted {result.auto.form} ({result.auto.loss} loss): {result.auto.reason}", markup=False)
    for message in result.warnings:
        console.print(f"warning: {message}", markup=False, highlight=False)


def _in_metric_units(points, higher_is_better: bool, ceiling: float):
    """Per-point predictions in the metric's units: a higher-is-better fit predicted the error ceiling - metric."""
    if not higher_is_better:
        return points
    out = points.copy()
    for column in ("observed", "predicted"):
        out[column] = ceiling - out[column]
    out["lower"], out["upper"] = ceiling - points["upper"], ceiling - points["lower"]
    return out
