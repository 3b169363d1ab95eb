"""Cell ends as curves: each model's finished runs at every data scale, one metric-against-compute curve.

A run's mid-training checkpoint is not the end of a shorter run: under cosine its rate has not decayed yet
(Hoffmann et al. 2022), and under warmup-stable-decay it is a stable-phase point that a cooldown would still
lower by a large step (Hagele et al. 2024, arXiv 2405.18392). A study with several data scales has the ends
themselves, and a branch study has them cheaply: each cell is a run cooled down at its own length. Read per
(model scale, seed), the ends at the study's data scales trace that model's final metric against compute,
which is what the envelope and the IsoFLOP profiles ask of a curve. Between two ends the curve is
interpolated linearly in log FLOPs, as IsoFLOP already reads every curve (`optimal.isoflop`), so the
envelope's FLOPs bins between them are filled; steps and samples are interpolated in logs. The interpolated
points are marked (`Curves.interpolated`), and the envelope's bootstrap resamples whole curves.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from scalinglab.optimal.curves import Curves

GROUP = ("model_scale", "seed")  # the runs whose ends make one curve (and the trial, in a search)
POINTS_PER_SEGMENT = 8  # interpolated points between two neighbouring ends


def cell_ends(table: pd.DataFrame) -> pd.DataFrame | None:
    """Every row at its run's last step, its `run_id` replaced by its curve's (model scale, seed, and trial
    when the table has one: `m4-s0`) and the run kept as `cell_run`; None when the table lacks those columns
    or no curve has two ends."""
    if not {"run_id", "steps", *GROUP} <= set(table.columns):
        return None
    steps = pd.to_numeric(table["steps"], errors="coerce")
    ends = table[steps == steps.groupby(table["run_id"].astype(str)).transform("max")]
    curve = "m" + ends["model_scale"].map("{:g}".format) + "-s" + ends["seed"].astype(str)
    if "trial" in ends:
        curve = curve + "-" + ends["trial"].astype(str)
    ends = ends.assign(cell_run=ends["run_id"], run_id=curve)
    if ends.empty or ends.groupby("run_id")["cell_run"].nunique().max() < 2:
        return None
    return ends


def interpolate_ends(curves: Curves, per_segment: int = POINTS_PER_SEGMENT) -> Curves:
    """`curves` with `per_segment` points between each pair of neighbouring points of a run (by FLOPs): the
    value linear in log C, steps and samples linear in logs, N the run's; the new points are `interpolated`."""
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("run", "n", "c", "value", "s", "d", "interpolated")}
    for name in curves.runs:
        index = np.flatnonzero(curves.run == name)
        index = index[np.argsort(curves.c[index], kind="stable")]
        log_c = np.log(curves.c[index])
        between = [np.linspace(a, b, per_segment + 2)[1:-1] for a, b in zip(log_c[:-1], log_c[1:], strict=True)]
        grid = np.unique(np.concatenate([log_c, *between]))
        columns["run"].append(np.full(grid.size, name, dtype=object))
        columns["n"].append(np.full(grid.size, float(np.median(curves.n[index]))))
        columns["c"].append(np.exp(grid))
        columns["value"].append(np.interp(grid, log_c, curves.value[index]))
        for key, values in (("s", curves.s), ("d", curves.d)):
            if values is not None:
                columns[key].append(np.exp(np.interp(grid, log_c, np.log(values[index]))))
        columns["interpolated"].append(~np.isin(grid, log_c))
    joined = {k: np.concatenate(v) if v else None for k, v in columns.items()}
    return replace(
        curves,
        run=joined["run"].astype(str),
        n=joined["n"],
        c=joined["c"],
        value=joined["value"],
        s=joined["s"],
        d=joined["d"],
        interpolated=joined["interpolated"],
    )
