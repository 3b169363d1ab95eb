"""`scalinglab optimal`, `profile` and `cost`: compute-optimal laws and what a target improvement costs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scalinglab.cli.render import K_NAME, K_OPTION, check_count, console, fmt, frame_table, percent, print_json, records
from scalinglab.errors import UserError, check_flops_per_param_sample

if TYPE_CHECKING:
    from scalinglab.fit.law import ScalingLaw

Opt = typer.Option
K_HELP = "k: FLOPs per parameter per sample in C = k N D"
IMPROVEMENT_HELP = "relative improvement over the reference, e.g. 0.01; below 1 for a lower-is-better metric"


def optimal(
    data: Annotated[Path, typer.Argument(help="observations with several points per run (.csv or .parquet)")],
    y: Annotated[str | None, Opt("--y", help="column of the metric [value]")] = None,
    x: Annotated[str | None, Opt("--x", help="column of cumulative training FLOPs C [flops]")] = None,
    n: Annotated[str | None, Opt("--n", help="column of model size N [n_params]")] = None,
    run: Annotated[str | None, Opt("--run", help="column naming the run [run_id]")] = None,
    metric: Annotated[str | None, Opt(help="keep rows whose 'metric' column is this")] = None,
    split: Annotated[str | None, Opt(help="keep rows whose 'split' column is this")] = None,
    higher_is_better: Annotated[bool, Opt(help="the metric improves upwards (mAP): use the upper envelope")] = False,
    method: Annotated[str, Opt(help="envelope, isoflop, parametric or all")] = "all",
    budget: Annotated[float | None, Opt(help="FLOPs budget at which to predict N_opt, S_opt, D_opt")] = None,
    bootstrap: Annotated[int, Opt(help="run resamples for the intervals (0: none)")] = 200,
    seed: Annotated[int, Opt(help="seed of the resampling")] = 0,
    bins: Annotated[int, Opt(help="log-spaced FLOPs bins of the envelope")] = 30,
    tolerance: Annotated[float, Opt(help="relative gap to the envelope that still counts as near-optimal")] = 0.01,
    flops_per_param_sample: Annotated[float, Opt(*K_OPTION, help=K_HELP)] = 6.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Optimal N, S and D as power laws of the FLOPs budget C, by the envelope, IsoFLOP and parametric methods."""
    from scalinglab.observations import read_table
    from scalinglab.optimal import ComputeOptimal
    check_count(bootstrap, "--bootstrap")
    check_count(seed, "--seed")
    check_count(bins, "--bins", minimum=1)
    if not tolerance >= 0:
        raise UserError(f"--tolerance must be >= 0 (0.01 is 1%), got {tolerance:g}")
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    if budget is not None and not budget > 0:
        raise UserError(f"--budget must be > 0 FLOPs, got {budget:g}")
    co = ComputeOptimal(
        method=method,
        higher_is_better=higher_is_better,
        n_bins=bins,
        tolerance=tolerance,
        bootstrap=bootstrap,
        seed=seed,
        flops_per_param_sample=flops_per_param_sample,
    )
    co.fit(read_table(data), {"y": y, "c": x, "n": n, "run": run}, source=str(data), metric=metric, split=split)
    c = budget if budget is not None else float(co.curves_.c.max())
    predictions = co.predict(c)
    if as_json:
        print_json(
            {
                "exponents": records(co.exponents_),
                "predictions": records(predictions),
                "envelope": records(co.envelope_),
                "near_optimal": records(co.near_optimal_),
                "warnings": co.warnings_,
            }
        )
        return
    console.print(frame_table(co.exponents_, "optimal-model laws: X_opt = coefficient * C^exponent"))
    console.print(frame_table(predictions, f"at a budget of {c:.3g} FLOPs"))
    env = co.envelope_[["bin_flops", "run_id", "n_params", "value"]]
    console.print(frame_table(env, f"envelope ({'upper' if higher_is_better else 'lower'}), best run per FLOPs bin"))
    near = co.near_optimal_
    smaller = near.groupby("bin_flops")["n_params"].nunique()
    console.print(
        f"near-optimal (within {percent(tolerance)}): {len(near)} run-bins; "
        f"{int((smaller > 1).sum())} bins have more than one model size near the envelope"
    )
    for message in co.warnings_:
        console.print(f"warning: {message}", markup=False, highlight=False)


def _reference(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        n_ref, d_ref = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--reference must be N,D (two numbers), got '{text}'") from None
    return n_ref, d_ref


def _load_nd_law(fit_file: Path) -> ScalingLaw:
    from scalinglab.fit.law import ScalingLaw
    from scalinglab.optimal.iso_metric import require_nd
    law = ScalingLaw.load(fit_file)
    require_nd(law, str(fit_file))
    return law


def profile(
    fit_file: Annotated[Path, typer.Argument(help="a fit of a law in N and D, from `scalinglab fit -o`")],
    improvement: Annotated[float | None, Opt(help=IMPROVEMENT_HELP)] = None,
    target: Annotated[float | None, Opt(help="absolute target value of the metric")] = None,
    reference: Annotated[str | None, Opt(help="reference N,D [the best observed run]")] = None,
    flops_per_param_sample: Annotated[float, Opt(*K_OPTION, help=K_HELP)] = 6.0,
    points: Annotated[int, Opt(help="points on the printed curve")] = 12,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of tables")] = False,
) -> None:
    """The (N, D) pairs that reach a target, the cheapest of them, and its cost against the reference."""
    from scalinglab.optimal.iso_metric import check_improvement, iso_metric_profile
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    check_count(points, "--points", minimum=1)
    if target is not None and not math.isfinite(target):
        raise UserError(f"--target must be a finite number, got {target}")
    law = _load_nd_law(fit_file)
    if improvement is not None:
        check_improvement(improvement, law.higher_is_better, "--improvement")
    p = iso_metric_profile(
        law,
        improvement=improvement,
        target=target,
        reference=_reference(reference),
        flops_per_param_sample=flops_per_param_sample,
    )
    if as_json:
        print_json(
            {
                "target": p.target,
                "reference": p.reference,
                "cheapest": p.cheapest,
                "multipliers": p.multipliers,
                "curve": records(p.curve),
            }
        )
        return
    ref = p.reference
    console.print(
        f"reference N {fmt(ref['n'])}, D {fmt(ref['d'])}: predicted {fmt(ref['value'])}; target {fmt(p.target)}"
    )
    step = max(len(p.curve) // points, 1)
    console.print(frame_table(p.curve.iloc[::step], "iso-metric profile"))
    cheap, mult = p.cheapest, p.multipliers
    console.print(
        f"cheapest: N {fmt(cheap['n'])} ({mult['n']:.3g}x), D {fmt(cheap['d'])} ({mult['d']:.3g}x), "
        f"C {fmt(cheap['flops'])} FLOPs ({mult['flops']:.3g}x the reference)"
    )


def cost(
    fit_file: Annotated[Path, typer.Argument(help="a fit of a law in N and D, from `scalinglab fit -o`")],
    improvements: Annotated[str, Opt(help=f"comma-separated; each a {IMPROVEMENT_HELP}")] = "0.01,0.02,0.05,0.1",
    reference: Annotated[str | None, Opt(help="reference N,D [the best observed run]")] = None,
    flops_per_param_sample: Annotated[float, Opt(*K_OPTION, help=K_HELP)] = 6.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """What each improvement costs: the cheapest N, D and FLOPs, as multiples of the reference."""
    from scalinglab.optimal.iso_metric import check_improvement, cost_table
    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    law = _load_nd_law(fit_file)
    try:
        levels = tuple(float(v) for v in improvements.split(","))
    except ValueError:
        raise UserError(f"--improvements must be comma-separated numbers, got '{improvements}'") from None
    for level in levels:
        check_improvement(level, law.higher_is_better, "--improvements: each")
    table = cost_table(law, levels, reference=_reference(reference), flops_per_param_sample=flops_per_param_sample)
    if as_json:
        print_json({"costs": records(table)})
        return
    console.print(frame_table(table, "cost of improvement"))
