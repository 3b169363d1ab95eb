"""`scalinglab backtest`: fit forms on the smaller scales, predict the held-out larger ones, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    holdout: Annotated[str, Opt(help="largest:K, frac:F or COLUMN>VALUE")] = "frac:0.2",
    forms: Annotated[str | None, Opt(help=FORMS_HELP)] = None,
    n: Annotated[str | None, Opt("--n", help="column of model size N [n_params]")] = None,
    d: Annotated[str | None, Opt("--d", help="column of data size D [dataset_size]")] = None,
    x: Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms")] = None,
    y: Annotated[str | None, Opt("--y", help="column of the metric [value]")] = None,
    metric: Annotated[str | None, Opt(help="keep rows whose 'metric' column is this")] = None,
    split: Annotated[str | None, Opt(help="keep rows whose 'split' column is this")] = None,
    all_points: Annotated[bool, Opt(help="use every row, not only the last step of each run")] = False,
    higher_is_better: Annotated[bool, Opt(help="the metric improves upwards (mAP, accuracy)")] = False,
    bootstrap: Annotated[int, Opt(help="bootstrap refits for the prediction intervals (0: none)")] = 100,
    seed: Annotated[int, Opt(help="seed of the bootstrap")] = 0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Would a law fitted on the small scales have predicted the held-out larger ones? Compare forms."""
    from scalinglab.fit.backtest import backtest as run_backtest
    from scalinglab.fit.backtest import holdout_mask
    from scalinglab.observations import read_table, select_fit_data
    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    names = forms.split(",") if forms else (ONE_VAR_FORMS if x else ["chinchilla", "kaplan"])
    inputs = {get_form(name).inputs for name in names if name != AUTO}
    if len(inputs) != 1:
        raise UserError(f"--forms mixes laws in different variables: {', '.join(names)}")
    table = read_table(data)
    fit_data = select_fit_data(
        table,
        next(iter(inputs)),
        {"n": n, "d": d, "x": x, "y": y},
        source=str(data),
        metric=metric,
        split=split,
        final_only=not all_points,
        higher_is_better=higher_is_better,
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
