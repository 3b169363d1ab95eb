"""`scalinglab fit`, `predict` and `forms`: fit a law to a table, predict from a saved fit, list forms."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.options import Columns, Direction, FormChoice, Intervals, Rows, Trials, TwoStep, grouped
from scalinglab.cli.render import (
    K_NAME,
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


X = Annotated[str | None, Opt("--x", help="column of the variable of one-variable forms [flops]")]
ALL_POINTS = Annotated[bool, Opt(help="fit every row, not only the last step of each run")]
DERIVE = Annotated[list[str] | None, Opt(help="derived quantity NAME=EXPR of the parameters; repeatable")]
OUTPUT = Annotated[Path | None, Opt("-o", "--output", help="write the fit to this JSON file")]
SEEN = Annotated[
    str | None, Opt("--seen", help="column of samples seen so far (form data_constrained); default samples_seen")
]


@grouped
def fit(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet)")],
    columns: Columns,
    rows: Rows,
    direction: Direction,
    intervals: Intervals,
    two_step: TwoStep,
    choice: FormChoice,
    trials: Trials,
    x: X = None,
    seen: SEEN = None,
    all_points: ALL_POINTS = False,
    on_duplicate: Annotated[str, Opt(help=ON_DUPLICATE_HELP)] = "drop",
    derive: DERIVE = None,
    as_json: vocabulary.JSON = False,
    output: OUTPUT = None,
) -> None:
    """Fit a scaling law to a table of runs and print the parameters (with intervals when bootstrapped)."""
    from scalinglab.cli.two_step_view import show_two_step
    from scalinglab.fit.law import fit_law

    options = choice.law_options(one_variable=x is not None) | intervals.law_options() | vars(direction)
    selection = _selection(columns, rows, on_duplicate, str(data))
    table, cols = columns.read(data)
    table = trials.apply(table, cols, rows, direction.higher_is_better, str(data))
    if two_step.via is not None:  # a law for the intermediate, a link to the metric (cli/two_step_view.py)
        law = _two_step(
            table, cols | {"x": x}, choice.form, two_step, options, selection | {"final_only": not all_points}
        )
        return show_two_step(law, two_step.via, str(data), as_json, output)
    final_only = False if all_points else None  # None: each run's last point, every point for steps-aware forms
    law = fit_law(
        choice.form, table, cols | {"x": x, "seen": seen}, law_options=options, final_only=final_only, **selection
    )
    _show_fit(law, _derived(law, derive), str(data), as_json, output)


def _two_step(table: Any, cols: dict, form: str, two_step: TwoStep, options: dict, selection: dict) -> Any:
    """A TwoStepLaw fitted to the table: `form` for the intermediate, the link to the metric."""
    from scalinglab.fit.two_step import TwoStepLaw

    law = TwoStepLaw(form=form, link=two_step.link, **options)
    return law.fit(table, cols, **two_step.fit_options(), **selection)


def _selection(columns: Columns, rows: Rows, on_duplicate: str, source: str) -> dict[str, Any]:
    """How the rows to fit are chosen from the table: the metric's rows, D from FLOPs, duplicates."""
    if on_duplicate not in ("drop", "keep", "error"):
        raise UserError(f"--on-duplicate must be drop, keep or error, not '{on_duplicate}'")
    return vars(rows) | columns.selection() | {"source": source, "on_duplicate": on_duplicate}


def _derived(law: Any, derive: list[str] | None) -> dict[str, dict[str, float]]:
    """Each --derive NAME=EXPR evaluated on the fitted parameters (with its interval)."""
    from scalinglab.fit.expressions import parse_named

    derived = {}
    for text in derive or []:
        name, expression = parse_named(text)
        try:
            derived[name] = law.derived(expression)
        except UserError as exc:
            raise UserError(f"--derive {exc}") from None
    return derived


def _show_fit(law: Any, derived: dict, source: str, as_json: bool, output: Path | None) -> None:
    """Save the fit when asked, then print it: the selection (for auto), the parameters, the derived values."""
    if output is not None:
        law.save(output)
    if as_json:
        print_json(fit_summary(law, derived))
        return
    if law.selection_ is not None:
        print_selection(law.selection_)
    print_fit(law, derived, source=source)
    if output is not None:
        console.print(f"fit written to {output}")


def _values(text: str | None, name: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise UserError(f"--{name}: '{text}' is not a number or comma-separated list of numbers") from None


VALUES = "(or a comma-separated list)"


def predict(
    fit_file: Annotated[Path, typer.Argument(help="a fit written by `scalinglab fit -o`")],
    n: Annotated[str | None, Opt("--n", help=f"model size N {VALUES}")] = None,
    d: Annotated[str | None, Opt("--d", help=f"data size D {VALUES}; unique data for a steps-aware form")] = None,
    seen: Annotated[str | None, Opt("--seen", help=f"samples seen S {VALUES}, for a steps-aware form")] = None,
    x: Annotated[str | None, Opt("--x", help="the variable of a one-variable form")] = None,
    c: Annotated[str | None, Opt("--c", help=f"training FLOPs C {VALUES} instead of --d: D = C / (k N)")] = None,
    flops_per_param_sample: vocabulary.K = 6.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Predict the metric from a saved fit, with intervals when the fit was bootstrapped."""
    from scalinglab.fit.law import ScalingLaw
    from scalinglab.fit.two_step import TwoStepLaw

    law = TwoStepLaw.load(fit_file) if TwoStepLaw.is_two_step_file(fit_file) else ScalingLaw.load(fit_file)
    texts = {"n": n, "d": d, "seen": seen, "x": x}
    given = _inputs(law, str(fit_file), texts, c, flops_per_param_sample)
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


def _inputs(law: Any, source: str, texts: dict[str, str | None], c: str | None, k: float) -> dict[str, np.ndarray]:
    """The law's inputs from the options (D from --c when asked); one line naming a missing or extra one."""
    given = {name: _values(text, name) for name, text in texts.items() if text is not None}
    if c is not None:  # the vocabulary's --c: D from a FLOPs budget
        if "d" in given or "n" not in given:
            raise UserError("--c derives D = C / (k N): give it with --n and without --d")
        check_flops_per_param_sample(k, K_NAME)
        n_values, c_values = np.broadcast_arrays(given["n"], _values(c, "c"))
        given = {**given, "n": n_values, "d": c_values / (k * n_values)}
    inputs = law.form_.inputs
    missing = [f"--{name}" for name in inputs if name not in given]
    extra = [f"--{name}" for name in given if name not in inputs]
    if missing or extra:
        need = " ".join(f"--{name}" for name in inputs)
        problem = f"missing {', '.join(missing)}" if missing else f"{', '.join(extra)} is not one of its inputs"
        raise UserError(f"{source}: form '{law.form_.name}' predicts from {need}: {problem}")
    return given


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
