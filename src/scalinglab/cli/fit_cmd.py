"""`scalinglab fit`, `predict` and `forms`: fit a law to a table, predict from a saved fit, list forms."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from scalinglab import observations
from scalinglab.cli import columns as vocabulary
from scalinglab.cli.render import (
    K_NAME,
    check_count,
    console,
    err_console,
    fit_summary,
    frame_table,
    group_warnings,
    print_fit,
    print_json,
    print_selection,
    records,
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
    n: vocabulary.N = None,
    d: vocabulary.D = None,
    x: Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms [flops]")] = None,
    y: vocabulary.Y = None,
    c: vocabulary.C = None,
    steps: vocabulary.S = None,
    run: vocabulary.RUN = None,
    run_by: vocabulary.RUN_BY = None,
    d_from_flops: vocabulary.D_FROM_FLOPS = False,
    flops_per_param_sample: vocabulary.K = 6.0,
    metric: vocabulary.METRIC = None,
    split: vocabulary.SPLIT = None,
    all_points: Annotated[bool, Opt(help="fit every row, not only the last step of each run")] = False,
    higher_is_better: vocabulary.HIGHER_IS_BETTER = False,
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
    via: Annotated[
        str | None,
        Opt(help="two steps: fit this intermediate (a column, or a value of 'metric', e.g. loss) by the law, "
            "then the metric as a monotone link of it over every checkpoint"),
    ] = None,
    via_split: Annotated[str | None, Opt(help="with --via: the intermediate's split when not --split's")] = None,
    link: Annotated[str, Opt(help="with --via: auto (held-out runs), sigmoid, exponential or power")] = "auto",
    candidates: Annotated[
        str | None,
        Opt(help="with --form auto: comma-separated forms to choose among (default chinchilla, chinchilla_shared, "
            "chinchilla_no_floor, chinchilla_no_floor_shared, kaplan); add data_constrained to weigh every checkpoint"),
    ] = None,
    seen: Annotated[
        str | None, Opt("--seen", help="column of samples seen so far (form data_constrained); default samples_seen")
    ] = None,
) -> None:
    """Fit a scaling law to a table of runs and print the parameters (with intervals when bootstrapped)."""
    from scalinglab.fit.expressions import parse_named
    from scalinglab.fit.law import fit_law
    from scalinglab.observations import read_table
    if on_duplicate not in ("drop", "keep", "error"):
        raise UserError(f"--on-duplicate must be drop, keep or error, not '{on_duplicate}'")
    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    if not 0 < ci_level < 1:
        raise UserError(f"--ci-level must be between 0 and 1, got {ci_level:g}")
    table, run = observations.prepare(read_table(data), source=str(data), run_by=run_by, steps=steps, run=run)
    if via is not None:  # two steps: a law for the intermediate, a link to the metric (cli/two_step_view.py)
        from scalinglab.cli.two_step_view import fit_two_step

        fit_two_step(
            table,
            str(data),
            {"n": n, "d": d, "x": x, "y": y, "c": c, "run": run},
            via=via,
            via_split=via_split,
            link=link,
            form=form,
            law_options={"loss": loss, "delta": delta, "intervals": intervals},
            higher_is_better=higher_is_better,
            ceiling=ceiling,
            bootstrap=bootstrap,
            seed=seed,
            ci_level=ci_level,
            selection={
                "metric": metric,
                "split": split,
                "final_only": not all_points,
                "d_from_flops": d_from_flops,
                "flops_per_param_sample": flops_per_param_sample,
                "on_duplicate": on_duplicate,
            },
            as_json=as_json,
            output=output,
        )
        return
    names = None
    if candidates is not None:
        if form != "auto":
            raise UserError("--candidates chooses among forms: it needs --form auto")
        names = [name.strip() for name in candidates.split(",") if name.strip()]
        for name in names:
            get_form(name)  # an unknown form is one line naming it
    options = {"loss": loss, "delta": delta, "higher_is_better": higher_is_better, "ceiling": ceiling}
    options |= {"bootstrap": bootstrap, "seed": seed, "ci_level": ci_level, "intervals": intervals}
    columns = {"n": n, "d": d, "x": x, "y": y, "c": c, "run": run, "seen": seen}
    law = fit_law(
        form,
        table,
        columns,
        candidates=names,
        law_options=options,
        source=str(data),
        metric=metric,
        split=split,
        final_only=False if all_points else None,  # None: each run's last point, every point for steps-aware forms
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
    c: Annotated[str | None, Opt("--c", help="training FLOPs C (or a list) instead of --d: D = C / (k N)")] = None,
    flops_per_param_sample: vocabulary.K = 6.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Predict the metric from a saved fit, with intervals when the fit was bootstrapped."""
    from scalinglab.fit.law import ScalingLaw
    from scalinglab.fit.two_step import TwoStepLaw

    law = TwoStepLaw.load(fit_file) if TwoStepLaw.is_two_step_file(fit_file) else ScalingLaw.load(fit_file)
    given = {
        k: v for k, v in {"n": _values(n, "n"), "d": _values(d, "d"), "x": _values(x, "x")}.items() if v is not None
    }
    if c is not None:  # the vocabulary's --c: D from a FLOPs budget
        if "d" in given or "n" not in given:
            raise UserError("--c derives D = C / (k N): give it with --n and without --d")
        check_flops_per_param_sample(flops_per_param_sample, K_NAME)
        n_values, c_values = np.broadcast_arrays(given["n"], _values(c, "c"))
        given = {**given, "n": n_values, "d": c_values / (flops_per_param_sample * n_values)}
    missing = [k for k in law.form_.inputs if k not in given]
    extra = [k for k in given if k not in law.form_.inputs]
    if missing or extra:
        need = " ".join(f"--{k}" for k in law.form_.inputs)
        raise UserError(f"{fit_file}: form '{law.form_.name}' predicts from {need}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = law.predict_frame(**given)
    notes = list(dict.fromkeys(str(w.message) for w in caught)) + domain_warnings(law, table)
    if as_json:
        print_json({"form": law.form_.name, "ci_level": law.ci_level, "predictions": records(table), "warnings": notes})
        return
    console.print(frame_table(table, f"{law.form_.name} law ({fit_file})", caption=law.form_.formula))
    for line in group_warnings(notes):
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)


def domain_warnings(law, table) -> list[str]:
    """A prediction the metric cannot take (mAP below 0 or above its ceiling, a loss at or below 0), named."""
    value = table["prediction"].to_numpy()
    bad = ~np.isfinite(value) | (value <= 0 if not law.higher_is_better else (value < 0) | (value > law.ceiling))
    if not bad.any():
        return []
    where = ", ".join(f"{k} = {table[k].iloc[int(np.argmax(bad))]:.3g}" for k in law.form_.inputs)
    cause = (
        f"the law on {law.ceiling:g} - metric is extrapolated to an error beyond {law.ceiling:g}"
        if law.higher_is_better
        else "the law is extrapolated beyond where it stays positive"
    )
    return [f"{int(bad.sum())} prediction(s) outside the metric's range (first at {where}): {cause}"]


def forms(as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False) -> None:
    """List the functional forms and their parameters."""
    if as_json:
        print_json(
            [
                {
                    "name": form.name,
                    "inputs": list(form.inputs),
                    "formula": form.formula,
                    "parameters": list(get_form(form).param_names),
                }
                for form in FORMS.values()
            ]
        )
        return
    table = Table(title="functional forms", title_justify="left")
    for col in ("name", "inputs", "formula", "parameters"):
        table.add_column(col)
    for form in FORMS.values():
        table.add_row(form.name, ", ".join(form.inputs), form.formula, ", ".join(get_form(form).param_names))
    console.print(table)
