"""`scalinglab optimal`, `profile` and `cost`: compute-optimal laws and what a target improvement costs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.options import CurveColumns, Rows, Trials, flag, grouped
from scalinglab.cli.render import K_NAME, K_OPTION, check_count, console, fmt, frame_table, percent, print_json, records
from scalinglab.errors import UserError, check_flops_per_param_sample

if TYPE_CHECKING:
    import pandas as pd

    from scalinglab.fit.law import ScalingLaw

Opt = typer.Option
K_HELP = "k: FLOPs per parameter per sample in C = k N D"
IMPROVEMENT_HELP = "relative improvement over the reference, e.g. 0.01; below 1 for a lower-is-better metric"


ENVELOPE = Annotated[
    str, Opt(help="robust (each run's curve smoothed first: one outlying checkpoint is never optimal) or raw")
]
BUDGET = Annotated[float | None, Opt(help="FLOPs budget at which to predict and compare N_opt, S_opt, D_opt")]
TOLERANCE = Annotated[float, Opt(help="relative gap to the envelope that still counts as near-optimal")]
HIGHER = Annotated[bool, Opt(help="the metric improves upwards (mAP): use the upper envelope")]
EPOCHS = Annotated[
    float,
    Opt(
        help="a steps-aware law (data_constrained): read it with each of the D unique samples seen this many "
        "times (samples seen = epochs x D; the cost counts every pass)"
    ),
]


@grouped
def optimal(
    data: Annotated[Path, typer.Argument(help="observations with several points per run (.csv or .parquet)")],
    columns: CurveColumns,
    rows: Rows,
    trials: Trials,
    higher_is_better: HIGHER = False,
    method: Annotated[str, Opt(help="envelope, isoflop, parametric or all")] = "all",
    envelope: ENVELOPE = "robust",
    budget: BUDGET = None,
    bootstrap: Annotated[int, Opt(help="run resamples for the intervals (0: none)")] = 200,
    seed: Annotated[int, Opt(help="seed of the resampling")] = 0,
    bins: Annotated[int, Opt(help="log-spaced FLOPs bins of the envelope")] = 30,
    tolerance: TOLERANCE = 0.01,
    as_json: vocabulary.JSON = False,
) -> None:
    """Optimal N, S and D as power laws of the FLOPs budget C, by the envelope, IsoFLOP and parametric methods,
    with what each method used and whether they agree."""
    from scalinglab.optimal import ComputeOptimal

    co = ComputeOptimal(
        method=method,
        higher_is_better=higher_is_better,
        n_bins=bins,
        tolerance=tolerance,
        bootstrap=bootstrap,
        seed=seed,
        flops_per_param_sample=columns.flops_per_param_sample,
        envelope=envelope,
        budget=budget,
    )
    co.check_options(flag)
    table, cols = columns.derived(*columns.read(data), str(data))
    table = trials.apply(table, cols, rows, higher_is_better, str(data))
    co.fit(table, cols, source=str(data), **vars(rows))
    at = budget if budget is not None else float(co.curves_.c.max())
    if as_json:
        return print_json(_summary(co, at))
    _show(co, at, envelope, higher_is_better, tolerance)


def _summary(co: Any, at: float) -> dict[str, Any]:
    """The JSON view: the laws, the predictions at `at`, what each method used, the envelope, the warnings."""
    return {
        "exponents": records(co.exponents_),
        "predictions": records(co.predict(at)),
        "usage": co.usage_,
        "agreement": co.agreement_.to_dict(),
        "envelope": records(co.envelope_),
        "raw_envelope": records(co.raw_envelope_),
        "outliers": records(co.outliers_),
        "near_optimal": records(co.near_optimal_),
        "warnings": co.warnings_,
    }


def _show(co: Any, at: float, envelope: str, higher_is_better: bool, tolerance: float) -> None:
    """The tables: what each method used, the laws, the predictions at `at`, agreement, the envelope."""
    console.print(frame_table(usage_view(co.usage_table_), "what each method used"))
    console.print(frame_table(co.exponents_, "optimal-model laws: X_opt = coefficient * C^exponent"))
    console.print(frame_table(prediction_view(co.predict(at)), f"at a budget of {at:.3g} FLOPs"))
    if len(co.agreement_.table):
        console.print(frame_table(agreement_view(co.agreement_.table), "do the methods agree?"))
    else:
        console.print("do the methods agree? one method per quantity: nothing to compare", highlight=False)
    columns_shown = ["bin_flops", "run_id", "n_params", "value"] + (["raw_value"] if envelope == "robust" else [])
    side = "upper" if higher_is_better else "lower"
    console.print(frame_table(co.envelope_[columns_shown], f"{envelope} envelope ({side}), best run per FLOPs bin"))
    near = co.near_optimal_
    smaller = near.groupby("bin_flops")["n_params"].nunique()
    console.print(
        f"near-optimal (within {percent(tolerance)}): {len(near)} run-bins; "
        f"{int((smaller > 1).sum())} bins have more than one model size near the envelope"
    )
    for message in co.warnings_:
        console.print(f"warning: {message}", markup=False, highlight=False)


def _short(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


def usage_view(table: pd.DataFrame) -> pd.DataFrame:
    """The usage table in 80 columns: the FLOPs range as one column, dropped points with their reasons."""
    import pandas as pd

    return pd.DataFrame(
        {
            "method": table["method"],
            "used": table["used"],
            "FLOPs range": [
                f"{_short(lo)}..{_short(hi)}" for lo, hi in zip(table["flops_low"], table["flops_high"], strict=True)
            ],
            "per point": table["per_point"],
            "dropped": [
                f"{n}: {why}" if n else "0" for n, why in zip(table["dropped"], table["why_dropped"], strict=True)
            ],
        }
    )


def prediction_view(table: pd.DataFrame) -> pd.DataFrame:
    """Predictions with their interval in one column; a domain note replaces an impossible answer's value."""
    import pandas as pd

    return pd.DataFrame(
        {
            "method": table["method"],
            "quantity": table["quantity"],
            "value": [
                _short(v) + (" (!)" if note else "") for v, note in zip(table["value"], table["note"], strict=True)
            ],
            "interval": [
                f"{_short(lo)}..{_short(hi)}" if math.isfinite(lo) else "-"
                for lo, hi in zip(table["lower"], table["upper"], strict=True)
            ],
        }
    )


def agreement_view(table: pd.DataFrame) -> pd.DataFrame:
    """The agreement table for people: the verdict, the consensus where the methods agree, the estimates' spread."""
    import pandas as pd

    columns = ("verdict", "consensus", "spread_low", "spread_high")
    return pd.DataFrame(
        {
            "quantity": table["quantity"],
            "compared": ["exponent" if not math.isfinite(c) else f"at C={_short(c)}" for c in table["budget"]],
            "methods": ["+".join(m[:3] for m in methods.split(",")) for methods in table["methods"]],
            "verdict": table["verdict"],
            "consensus": [
                _short(c) if v == "agree" else "-" for v, c in zip(table["verdict"], table["consensus"], strict=True)
            ],
            "spread": [
                f"{_short(lo)}..{_short(hi)}" for _, _, lo, hi in zip(*(table[c] for c in columns), strict=True)
            ],
        }
    )


def _reference(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        n_ref, d_ref = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--reference must be N,D (two numbers), got '{text}'") from None
    return n_ref, d_ref


def _load_nd_law(fit_file: Path, epochs: float) -> ScalingLaw:
    """The fit in `fit_file` as a law in N and D (a steps-aware law read at `epochs`)."""
    from scalinglab.fit.law import STEPS_INPUT, ScalingLaw
    from scalinglab.optimal.iso_metric import require_nd

    if not (math.isfinite(epochs) and epochs > 0):
        raise UserError(f"--epochs must be a positive number, got {epochs:g}")
    law = ScalingLaw.load(fit_file)
    if STEPS_INPUT in law.form_.inputs:
        law = law.two_variable(epochs)
    elif epochs != 1.0:
        raise UserError(f"--epochs: {fit_file} is a {law.form_.name} law, which does not depend on samples seen")
    require_nd(law, str(fit_file))
    return law


def profile(
    fit_file: Annotated[Path, typer.Argument(help="a fit of a law in N and D, from `scalinglab fit -o`")],
    improvement: Annotated[float | None, Opt(help=IMPROVEMENT_HELP)] = None,
    target: Annotated[float | None, Opt(help="absolute target value of the metric")] = None,
    reference: Annotated[str | None, Opt(help="reference N,D [the best observed run]")] = None,
    flops_per_param_sample: Annotated[float, Opt(*K_OPTION, help=K_HELP)] = 6.0,
    epochs: EPOCHS = 1.0,
    points: Annotated[int, Opt(help="points on the printed curve")] = 12,
    as_json: vocabulary.JSON = False,
) -> None:
    """The (N, D) pairs that reach a target, the cheapest of them, and its cost against the reference."""
    from scalinglab.optimal.iso_metric import check_improvement, iso_metric_profile

    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    check_count(points, "--points", minimum=1)
    if target is not None and not math.isfinite(target):
        raise UserError(f"--target must be a finite number, got {target}")
    law = _load_nd_law(fit_file, epochs)
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
        return print_json(
            {
                "target": p.target,
                "reference": p.reference,
                "cheapest": p.cheapest,
                "multipliers": p.multipliers,
                "curve": records(p.curve),
            }
        )
    _show_profile(p, points)


def _show_profile(p: Any, points: int) -> None:
    """The reference and target, `points` points of the iso-metric curve, and the cheapest pair's cost."""
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
    epochs: EPOCHS = 1.0,
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """What each improvement costs: the cheapest N, D and FLOPs, as multiples of the reference."""
    from scalinglab.optimal.iso_metric import check_improvement, cost_table

    check_flops_per_param_sample(flops_per_param_sample, K_NAME)
    law = _load_nd_law(fit_file, epochs)
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
