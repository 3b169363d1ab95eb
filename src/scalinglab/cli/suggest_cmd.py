"""`scalinglab suggest`: which run to train next, ranked by expected shrinkage of a decision's interval per FLOP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.options import Columns, Direction, FormChoice, Rows, Trials, grouped
from scalinglab.cli.render import check_count, console, frame_table, percent, print_json
from scalinglab.errors import UserError

Opt = typer.Option


def _grid(text: str | None, option: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise UserError(f"{option}: '{text}' is not a comma-separated list of numbers") from None
    bad = values[~np.isfinite(values) | (values <= 0)]
    if bad.size:
        raise UserError(f"{option}: every value must be a finite number > 0, got {bad[0]:g}")
    return np.unique(values)


GRID_N = Annotated[
    str | None,
    Opt(help="candidate model sizes, comma-separated [the smallest observed to 4x the largest, steps of 2^0.5]"),
]
GRID_D = Annotated[
    str | None, Opt(help="candidate data sizes, comma-separated [half the smallest observed to 4x the largest, 2^0.5]")
]
BOOTSTRAP = Annotated[
    int, Opt(help="run-bootstrap replicas: the current interval, and the draws the criterion averages (>= 20)")
]
NOISE = Annotated[float | None, Opt(help="log-normal sigma of a new run's outcome [the fit's residual scale]")]
TARGET_N = Annotated[float | None, Opt(help="decide the prediction at this model size (with --target-d)")]
TARGET_D = Annotated[float | None, Opt(help="decide the prediction at this data size (with --target-n)")]


@grouped
def suggest(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet); each run's last point")],
    columns: Columns,
    rows: Rows,
    direction: Direction,
    choice: FormChoice,
    trials: Trials,
    budget: Annotated[float | None, Opt(help="decide N_opt at this FLOPs budget C")] = None,
    target_n: TARGET_N = None,
    target_d: TARGET_D = None,
    grid_n: GRID_N = None,
    grid_d: GRID_D = None,
    top: Annotated[int, Opt(help="how many candidates to show")] = 10,
    bootstrap: BOOTSTRAP = 200,
    seed: Annotated[int, Opt(help="seed of the resampling")] = 0,
    noise: NOISE = None,
    as_json: vocabulary.JSON = False,
) -> None:
    """Rank candidate runs (N x D) by how much each is expected to narrow the 95% interval of N_opt at --budget,
    or of the prediction at --target-n/--target-d, per FLOP it costs."""
    from scalinglab.optimal.suggest import suggest_runs

    target = _check(top, bootstrap, seed, budget, target_n, target_d, noise)
    n_values, d_values = _grid(grid_n, "--grid-n"), _grid(grid_d, "--grid-d")
    fit_data, law = _fit(data, columns, rows, direction, choice, trials)
    result = suggest_runs(
        fit_data,
        budget=budget,
        target=target,
        candidates=_candidates(fit_data, n_values, d_values),
        bootstrap=bootstrap,
        seed=seed,
        noise=noise,
        law=law,
        flops_per_param_sample=columns.flops_per_param_sample,
        **vars(direction),
    )
    if as_json:
        return print_json(result.to_dict(top))
    _show(result, top)


def _fit(
    data: Path, columns: Columns, rows: Rows, direction: Direction, choice: FormChoice, trials: Trials
) -> tuple[Any, Any]:
    """Each run's last point, and the law that ranks the candidates (--form; auto: chosen by extrapolation)."""
    from scalinglab.fit.law import fit_law
    from scalinglab.observations import select_fit_data

    options = choice.law_options() | {"intervals": None} | vars(direction)
    table, cols = columns.read(data)
    table = trials.apply(table, cols, rows, direction.higher_is_better, str(data))
    fit_data = select_fit_data(
        table, ("n", "d"), cols, n_params=5, source=str(data), **vars(rows), **columns.selection(), **vars(direction)
    )
    return fit_data, fit_law(choice.form, fit_data, law_options=options)


def _check(
    top: int,
    bootstrap: int,
    seed: int,
    budget: float | None,
    target_n: float | None,
    target_d: float | None,
    noise: float | None,
) -> tuple[float, float] | None:
    """The options checked (one line naming the first bad one); the (N, D) target when one is given."""
    check_count(top, "--top", minimum=1)
    check_count(bootstrap, "--bootstrap", minimum=20)
    check_count(seed, "--seed")
    for option, value in (("--budget", budget), ("--target-n", target_n), ("--target-d", target_d)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} must be a finite number > 0, got {value:g}")
    if (target_n is None) != (target_d is None):
        raise UserError("--target-n and --target-d go together: the prediction at (N, D)")
    if noise is not None and not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise must be a finite number >= 0 (log-normal sigma, e.g. 0.01), got {noise:g}")
    return None if target_n is None else (target_n, target_d)


def _candidates(fit_data: Any, n_values: np.ndarray | None, d_values: np.ndarray | None) -> Any:
    """The candidate grid from --grid-n/--grid-d (the default axis for the one not given); None: the default."""
    from scalinglab.optimal.suggest import default_axes, grid_candidates

    if n_values is None and d_values is None:
        return None
    n_obs, d_obs = fit_data.inputs
    n_axis, d_axis = default_axes(n_obs, d_obs)
    n_grid = n_values if n_values is not None else n_axis
    d_grid = d_values if d_values is not None else d_axis
    return grid_candidates(n_grid, d_grid, n_obs, d_obs)


def _show(result: Any, top: int) -> None:
    """The current interval, then the best candidates with their expected shrinkage per FLOP."""
    import pandas as pd

    now = result.current
    console.print(
        f"{result.quantity}: {now['value']:.4g}, {percent(0.95)} interval {now['lower']:.4g} .. {now['upper']:.4g} "
        f"(width {now['width']:.3g} {result.width_unit}); {result.replicas} replicas, new-run noise "
        f"sigma {result.noise:.3g}; {len(result.table)} candidates",
        highlight=False,
    )
    shown = result.top(top)
    view = pd.DataFrame(
        {
            "rank": shown["rank"],
            "N": [f"{v:.3g}" for v in shown["n_params"]],
            "D": [f"{v:.3g}" for v in shown["dataset_size"]],
            "FLOPs": [f"{v:.3g}" for v in shown["flops"]],
            "expected width": [f"{v:.3g}" for v in shown["expected_width"]],
            "shrinkage": [percent(v) for v in shown["relative_shrinkage"]],
            "per FLOP": [f"{v:.3g}" for v in shown["score"]],
        }
    )
    console.print(frame_table(view, "what to run next: expected interval shrinkage per FLOP, best first"))
    for message in result.warnings:
        console.print(f"warning: {message}", markup=False, highlight=False)
