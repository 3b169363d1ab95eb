"""`scalinglab fit`, `predict` and `forms`: fit a law to a table, predict from a saved fit, list forms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from scalinglab.cli.render import (
    K_NAME,
    K_OPTION,
    check_count,
    console,
    fit_summary,
    fmt,
    print_fit,
    print_json,
    print_selection,
)
from scalinglab.errors import UserError, check_flops_per_param_sample
from scalinglab.fit.forms import FORMS, get_form

Opt = typer.Option
ON_DUPLICATE_HELP = (
    "drop, keep or error on duplicate rows (same run, inputs and value); without --all-points, error "
    "also checks the rows before each run's last point is taken"
)


def fit(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet)")],
    form: Annotated[
        str,
        Opt(
            help=f"functional form: {', '.join(FORMS)}; chinchilla_floor=E (floor fixed at E); or auto (the "
            "two-variable candidate with the best leave-one-run-out error, simplest within one standard error)"
        ),
    ] = "chinchilla",
    n: Annotated[str | None, Opt("--n", help="column of model size N [n_params]")] = None,
    d: Annotated[str | None, Opt("--d", help="column of data size D [dataset_size]")] = None,
    x: Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms [flops]")] = None,
    y: Annotated[str | None, Opt("--y", help="column of the metric [value]")] = None,
    c: Annotated[str | None, Opt("--c", help="column of training FLOPs C, for --d-from-flops [flops]")] = None,
    run: Annotated[str | None, Opt("--run", help="column that groups points into runs [run_id]")] = None,
    d_from_flops: Annotated[bool, Opt(help="derive D = C / (k N) instead of reading a D column")] = False,
    flops_per_param_sample: Annotated[float, Opt(*K_OPTION, help="k: FLOPs per parameter per sample")] = 6.0,
    metric: Annotated[str | None, Opt(help="keep rows whose 'metric' column is this")] = None,
    split: Annotated[str | None, Opt(help="keep rows whose 'split' column is this")] = None,
    all_points: Annotated[bool, Opt(help="fit every row, not only the last step of each run")] = False,
    higher_is_better: Annotated[bool, Opt(help="the metric improves upwards (mAP, accuracy)")] = False,
    ceiling: Annotated[float, Opt(help="best possible value of a higher-is-better metric")] = 1.0,
    loss: Annotated[str, Opt(help="huber, mse or asymmetric")] = "huber",
    delta: Annotated[float, Opt(help="Huber threshold on log residuals")] = 1e-3,
    on_duplicate: Annotated[str, Opt(help=ON_DUPLICATE_HELP)] = "drop",
    bootstrap: Annotated[int, Opt(help="bootstrap refits for confidence intervals (0: none)")] = 0,
    seed: Annotated[int, Opt(help="seed of the bootstrap resampling")] = 0,
    ci_level: Annotated[float, Opt(help="coverage of the intervals")] = 0.95,
    intervals: Annotated[
        str, Opt(help="profile (profile likelihood; open where the data do not bound a parameter) or bootstrap")
    ] = "profile",
    derive: Annotated[list[str] | None, Opt(help="derived quantity NAME=EXPR of the parameters; repeatable")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
    output: Annotated[Path | None, Opt("-o", "--output", help="write the fit to this JSON file")] = None,
) -> None:
    """Fit a scaling law to a table of runs and print the parameters (with intervals when bootstrapped)."""
    from scalinglab.fit.expressions import parse_named
    from scalinglab.fit.law import ScalingLaw
    from scalinglab.observations import read_table
    if on_duplicate not in ("drop", "keep", "error"):
        raise UserError(f"--on-duplicate must be drop, keep or error, not '{on_duplicate}'")
    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    if not 0 < ci_level < 1:
        raise UserError(f"--ci-level must be between 0 and 1, got {ci_level:g}")
    table = read_table(data)
    law = ScalingLaw(
        form=form,
        loss=loss,
        delta=delta,
        higher_is_better=higher_is_better,
        ceiling=ceiling,
        bootstrap=bootstrap,
        seed=seed,
        ci_level=ci_level,
        intervals=intervals,
    )
    columns = {"n": n, "d": d, "x": x, "y": y, "c": c, "run": run}
    law.fit(
        table,
        columns,
        source=str(data),
        metric=metric,
        split=split,
        final_only=not all_points,
        d_from_flops=d_from_flops,
        flops_per_param_sample=flops_per_param_sample,
        on_duplicate=on_duplicate,
    )
    derived = {}
    for text in derive or []:
        name, expression = parse_named(text)
        try:
            derived[name] = law.derived(expression)
        except UserError as exc:
            raise UserError(f"--derive {exc}") from None
    if output is not None:
        law.save(output)
    if as_json:
        print_json(fit_summary(law, derived))
    else:
        if law.selection_ is not None:
            print_selection(law.selection_)
        print_fit(law, derived, source=str(data))
        if output is not None:
            console.print(f"fit written to {output}")


def _values(text: str | None, name: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise UserError(f"--{name}: '{text}' is not a number or comma-separated list of numbers") from None


def predict(
    fit_file: Annotated[Path, typer.Argument(help="a fit written by `scalinglab fit -o`")],
    n: Annotated[str | None, Opt("--n", help="model size N (or a comma-separated list)")] = None,
    d: Annotated[str | None, Opt("--d", help="data size D (or a comma-separated list)")] = None,
    x: Annotated[str | None, Opt("--x", help="the variable of a one-variable form")] = None,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Predict the metric from a saved fit, with intervals when the fit was bootstrapped."""
    from scalinglab.fit.law import ScalingLaw
    law = ScalingLaw.load(fit_file)
    given = {
        k: v for k, v in {"n": _values(n, "n"), "d": _values(d, "d"), "x": _values(x, "x")}.items() if v is not None
    }
    missing = [k for k in law.form_.inputs if k not in given]
    extra = [k for k in given if k not in law.form_.inputs]
    if missing or extra:
        need = " ".join(f"--{k}" for k in law.form_.inputs)
        raise UserError(f"{fit_file}: form '{law.form_.name}' predicts from {need}")
    inputs = dict(zip(given, np.broadcast_arrays(*given.values()), strict=True))
    if law.bootstrap_theta_ is not None:
        point, lower, upper = law.predict(return_ci=True, **inputs)
    else:
        point, lower, upper = law.predict(**inputs), None, None
    rows = []
    for i in range(point.size):
        row = {k: float(v[i]) for k, v in inputs.items()} | {"prediction": float(point[i])}
        if lower is not None:
            row |= {"lower": float(lower[i]), "upper": float(upper[i])}
        rows.append(row)
    if as_json:
        print_json({"form": law.form_.name, "ci_level": law.ci_level, "predictions": rows})
        return
    table = Table(title=f"{law.form_.name}: {law.form_.formula}", title_justify="left")
    for key in rows[0]:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*[fmt(v) for v in row.values()])
    console.print(table)


def forms() -> None:
    """List the functional forms and their parameters."""
    table = Table(title="functional forms", title_justify="left")
    for col in ("name", "inputs", "formula", "parameters"):
        table.add_column(col)
    for form in FORMS.values():
        table.add_row(form.name, ", ".join(form.inputs), form.formula, ", ".join(get_form(form).param_names))
    console.print(table)
