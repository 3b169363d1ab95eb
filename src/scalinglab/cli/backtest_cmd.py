"""`scalinglab backtest`: fit forms on the smaller scales, predict the held-out larger ones, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli import columns
from scalinglab.cli.render import check_count, console, frame_table, print_json, records
from scalinglab.errors import UserError
from scalinglab.fit.forms import get_form

Opt = typer.Option
AUTO = "auto"  # fit.backtest.AUTO, kept here so --help does not import the engine
ONE_VAR_FORMS = ["power", "power_offset", "bnsl1", "m4", AUTO]
FORMS_HELP = (
    f"comma-separated forms; {AUTO}: the automatic choice [chinchilla,kaplan; with --x {','.join(ONE_VAR_FORMS)}]"
)


def backtest(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet)")],
    holdout: Annotated[
        str,
        Opt(help="largest:K (the K points largest in N x D), largest-n:K (every point of the K largest model sizes), "
            "frac:F or COLUMN>VALUE"),
    ] = "frac:0.2",
    forms: Annotated[str | None, Opt(help=FORMS_HELP)] = None,
    n: columns.N = None,
    d: columns.D = None,
    c: columns.C = None,
    steps: columns.S = None,
    run: columns.RUN = None,
    run_by: columns.RUN_BY = None,
    d_from_flops: columns.D_FROM_FLOPS = False,
    flops_per_param_sample: columns.K = 6.0,
    x: Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms")] = None,
    y: columns.Y = None,
    metric: columns.METRIC = None,
    split: columns.SPLIT = None,
    all_points: Annotated[bool, Opt(help="use every row, not only the last step of each run")] = False,
    higher_is_better: columns.HIGHER_IS_BETTER = False,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the prediction intervals (0: none)")] = 100,
    seed: Annotated[int, Opt(help="seed of the bootstrap")] = 0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of tables")] = False,
    via: Annotated[
        str | None,
        Opt(
            help="compare direct laws on the metric with two-step laws through this intermediate (a column or "
            "a value of 'metric', e.g. loss)"
        ),
    ] = None,
    via_split: Annotated[str | None, Opt(help="with --via: the intermediate's split when not --split's")] = None,
    link: Annotated[str, Opt(help="with --via: auto, sigmoid, exponential or power")] = "auto",
    ceiling: Annotated[float, Opt(help="best possible value of a higher-is-better metric")] = 1.0,
) -> None:
    """Would a law fitted on the small scales have predicted the held-out larger ones? Compare forms."""
    from scalinglab.fit.backtest import backtest as run_backtest
    from scalinglab.fit.backtest import holdout_mask
    from scalinglab.observations import prepare, read_table, select_fit_data

    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    names = forms.split(",") if forms else (ONE_VAR_FORMS if x else ["chinchilla", "kaplan"])
    inputs = {get_form(name).inputs for name in names if name != AUTO}
    if len(inputs) != 1:
        raise UserError(f"--forms mixes laws in different variables: {', '.join(names)}")
    table, run = prepare(read_table(data), source=str(data), run_by=run_by, steps=steps, run=run)
    cols = {"n": n, "d": d, "x": x, "y": y, "c": c, "run": run}
    if via is not None:
        from scalinglab.cli.two_step_view import print_via_backtest
        from scalinglab.fit.backtest import backtest_via

        if AUTO in names:
            raise UserError("--via compares given forms; auto is not offered with --via")
        result = backtest_via(
            table,
            next(iter(inputs)),
            via,
            holdout,
            names,
            cols,
            link=link,
            higher_is_better=higher_is_better,
            ceiling=ceiling,
            bootstrap=bootstrap,
            seed=seed,
            source=str(data),
            metric=metric,
            split=split,
            via_split=via_split,
            final_only=not all_points,
            d_from_flops=d_from_flops,
            flops_per_param_sample=flops_per_param_sample,
        )
        print_via_backtest(result, holdout, as_json)
        return
    fit_data = select_fit_data(
        table,
        next(iter(inputs)),
        cols,
        source=str(data),
        metric=metric,
        split=split,
        final_only=not all_points,
        higher_is_better=higher_is_better,
        ceiling=ceiling,
        d_from_flops=d_from_flops,
        flops_per_param_sample=flops_per_param_sample,
    )
    mask = holdout_mask(holdout, fit_data, table)
    result = run_backtest(fit_data, mask, names, bootstrap=bootstrap, seed=seed, higher_is_better=False)
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
                "predictions": records(_in_metric_units(result.points, higher_is_better, ceiling)),
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
