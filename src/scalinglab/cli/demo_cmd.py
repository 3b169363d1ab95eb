"""`scalinglab demo`: the main job. Fits the law on the bundled example sweep and prints the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli.render import console, fmt, print_fit
from scalinglab.example import TRUE_PARAMS, example_observations
from scalinglab.law import ScalingLaw


def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the example data and the fit")] = Path(
        "scalinglab-demo"
    ),
    bootstrap: Annotated[int, typer.Option(help="bootstrap refits for the intervals")] = 500,
) -> None:
    """Generate the example sweep, fit L(N, D) = E + A/N^alpha + B/D^beta with intervals, print it."""
    output.mkdir(parents=True, exist_ok=True)
    data_path, fit_path = output / "observations.csv", output / "fit.json"
    obs = example_observations()
    obs.to_csv(data_path, index=False)
    console.print(f"example sweep: {len(obs)} runs drawn from a known law with 1% noise -> {data_path}")
    with console.status("fitting 4,500 starts and bootstrap refits"):
        law = ScalingLaw(form="chinchilla", bootstrap=bootstrap, seed=0).fit(obs, source=str(data_path))
    law.save(fit_path)
    print_fit(law, {"a = beta/(alpha+beta)": law.derived("beta / (alpha + beta)")}, source=str(data_path))
    truth = ", ".join(f"{k} {fmt(v)}" for k, v in TRUE_PARAMS.items())
    console.print(f"true parameters of the example: {truth}")
    console.print(f"fit written to {fit_path}")
