"""`scalinglab study curves`: the schedule-aware loss-curve law per model of a study, with its backtest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli import columns as vocabulary
from scalinglab.cli.render import console, err_console, frame_table, print_json
from scalinglab.errors import UserError

Opt = typer.Option


def curves(
    directory: Annotated[Path, typer.Argument(help="study directory")],
    metric: Annotated[str, Opt(help="the metric whose curves are fitted")] = "loss",
    split: Annotated[str, Opt(help="the split of its rows")] = "eval",
    from_step: Annotated[int, Opt(help="leave out the checkpoints before this step (an initial transient)")] = 1,
    predict_steps: Annotated[int | None, Opt(help="predict each model's final metric at this run length")] = None,
    decay: Annotated[float, Opt(help="the annealing area's momentum lambda (Tissue et al.: 0.999)")] = 0.999,
    as_json: vocabulary.JSON = False,
) -> None:
    """Fit L(s) = L0 + A S1^-alpha - C S2 (Tissue et al. 2024; S1, S2: the learning-rate and annealing areas of
    the study's own schedule) on every checkpoint of each model's runs; backtest it from the shorter runs on the
    longest; with --predict-steps, each model's final metric for a run of that length."""
    import pandas as pd

    from scalinglab.analysis.curves import model_curves, model_row
    from scalinglab.study.store import Store

    if from_step < 1 or (predict_steps is not None and predict_steps < 1):
        raise UserError("--from-step and --predict-steps must be >= 1")
    store = Store.open(directory)
    config = store.config()
    models = model_curves(config, store.runs(), store.observations(), metric, split, from_step, decay)
    table = pd.DataFrame([model_row(m, config, predict_steps) for m in models])
    if as_json:
        return print_json({"models": table.to_dict(orient="records")})
    shown = table[[c for c in table.columns if not c.endswith(("_lo", "_hi")) and c != "points"]].fillna("")
    title = f"schedule-aware law of {metric} ({split}) per model (intervals: --json)"
    caption = "backtest: fitted on the shorter runs (steps), the longest run's final point predicted (worst error)"
    console.print(frame_table(shown, title, caption))
    if predict_steps is not None and (table["predicted"] < 0).any():
        below = ", ".join(f"{m:g}X" for m in table.loc[table["predicted"] < 0, "model_scale"])
        err_console.print(
            f"warning: the law goes below zero at {predict_steps} steps for {below}: the annealing term outgrows "
            "the curves it was fitted on, and that extrapolation is not supported",
            highlight=False,
            soft_wrap=True,
        )
