"""`scalinglab suggest`: which run to train next, ranked by expected shrinkage of a decision's interval per FLOP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from scalinglab import observations
from scalinglab.cli import columns as vocabulary
from scalinglab.cli.render import K_NAME, check_count, console, frame_table, percent, print_json
from scalinglab.errors import UserError, check_flops_per_param_sample

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


def suggest(
    data: Annotated[Path, typer.Argument(help="observations table (.csv, .tsv or .parquet); each run's last point")],
    budget: Annotated[float | None, Opt(help="decide N_opt at this FLOPs budget C")] = None,
    target_n: Annotated[float | None, Opt(help="decide the prediction at this model size (with --target-d)")] = None,
    target_d: Annotated[float | None, Opt(help="decide the prediction at this data size (with --target-n)")] = None,
    grid_n: Annotated[
        str | None,
        Opt(help="candidate model sizes, comma-separated [the smallest observed to 4x the largest, steps of 2^0.5]"),
    ] = None,
    grid_d: Annotated[
        str | None,
        Opt(help="candidate data sizes, comma-separated [half the smallest observed to 4x the largest, 2^0.5]"),
    ] = None,
    top: Annotated[int, Opt(help="how many candidates to show")] = 10,
    bootstrap: Annotated[
        int, Opt(help="run-bootstrap replicas: the current interval, and the draws the criterion averages (>= 20)")
    ] = 200,
    seed: Annotated[int, Opt(help="seed of the resampling")] = 0,
    noise: Annotated[
        float | None, Opt(help="log-normal sigma of a new run's outcome [the fit's residual scale]")
    ] = None,
    n: vocabulary.N = None,
    d: vocabulary.D = None,
    c: vocabulary.C = None,
    steps: vocabulary.S = None,
    run: vocabulary.RUN = None,
    run_by: vocabulary.RUN_BY = None,
    y: vocabulary.Y = None,
    metric: vocabulary.METRIC = None,
    split: vocabulary.SPLIT = None,
    higher_is_better: vocabulary.HIGHER_IS_BETTER = False,
    d_from_flops: vocabulary.D_FROM_FLOPS = False,
    flops_per_param_sample: vocabulary.K = 6.0,
    ceiling: Annotated[float, Opt(help="best possible value of a higher-is-better metric")] = 1.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Rank candidate runs (N x D) by how much each is expected to narrow the 95% interval of N_opt at --budget,
    or of the prediction at --target-n/--target-d, per FLOP it costs."""
    from scalinglab.observations import read_table, select_fit_data
    from scalinglab.optimal.suggest import default_axes, grid_candidates, suggest_runs

    check_count(top, "--top", minimum=1)
    check_count(bootstrap, "--bootstrap", minimum=20)
    check_count(seed, "--seed")
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    for option, value in (("--budget", budget), ("--target-n", target_n), ("--target-d", target_d)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} must be a finite number > 0, got {value:g}")
    if (target_n is None) != (target_d is None):
        raise UserError("--target-n and --target-d go together: the prediction at (N, D)")
    if noise is not None and not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise must be a finite number >= 0 (log-normal sigma, e.g. 0.01), got {noise:g}")
    n_values, d_values = _grid(grid_n, "--grid-n"), _grid(grid_d, "--grid-d")
    table, run = observations.prepare(read_table(data), source=str(data), run_by=run_by, steps=steps, run=run)
    fit_data = select_fit_data(
        table,
        ("n", "d"),
        {"n": n, "d": d, "c": c, "y": y, "run": run},
        source=str(data),
        metric=metric,
        split=split,
        d_from_flops=d_from_flops,
        flops_per_param_sample=flops_per_param_sample,
        higher_is_better=higher_is_better,
        ceiling=ceiling,
        n_params=5,
    )
    candidates = None
    if n_values is not None or d_values is not None:
        n_obs, d_obs = fit_data.inputs
        n_axis, d_axis = default_axes(n_obs, d_obs)
        n_grid = n_values if n_values is not None else n_axis
        d_grid = d_values if d_values is not None else d_axis
        candidates = grid_candidates(n_grid, d_grid, n_obs, d_obs)
    result = suggest_runs(
        fit_data,
        budget=budget,
        target=None if target_n is None else (target_n, target_d),
        candidates=candidates,
        bootstrap=bootstrap,
        seed=seed,
        noise=noise,
        flops_per_param_sample=flops_per_param_sample,
        higher_is_better=higher_is_better,
        ceiling=ceiling,
    )
    if as_json:
        print_json(result.to_dict(top))
        return
    now = result.current
    console.print(
        f"{result.quantity}: {now['value']:.4g}, {percent(0.95)} interval {now['lower']:.4g} .. {now['upper']:.4g} "
        f"(width {now['width']:.3g} {result.width_unit}); {result.replicas} replicas, new-run noise "
        f"sigma {result.noise:.3g}; {len(result.table)} candidates",
        highlight=False,
    )
    import pandas as pd

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
