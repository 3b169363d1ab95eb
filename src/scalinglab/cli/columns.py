"""The one column vocabulary of the analysis commands: the options naming a table's columns, defined once.

`--n --d --c --s/--steps --run --run-by --y --metric --split --higher-is-better --d-from-flops --k` mean
the same on every command; `observations.prepare` applies the ones a command's engine does not take itself.
"""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.render import K_OPTION
from scalinglab.observations.schema import COLUMNS

Opt = typer.Option

TABLE_COLUMNS = {name: column.label for name, column in COLUMNS.items() if column.analysis}
EPILOG = (
    "A table whose columns have the canonical names needs no column option: "
    + ", ".join(f"{name} ({what})" for name, what in TABLE_COLUMNS.items())
    + ". See docs/observations.md."
)

N = Annotated[str | None, Opt("--n", help="column of model size N; default column: n_params")]
D = Annotated[str | None, Opt("--d", help="column of data size D; default column: dataset_size")]
C = Annotated[str | None, Opt("--c", help="column of cumulative training FLOPs C; default column: flops")]
S = Annotated[str | None, Opt("--s", "--steps", help="column of optimiser steps S so far; default column: steps")]
RUN = Annotated[str | None, Opt("--run", help="column naming the run; default column: run_id")]
RUN_BY = Annotated[
    str | None,
    Opt(
        "--run-by",
        help="COL1,COL2,...: build the run id from these columns (a configuration that comes back after other "
        "rows starts a new run)",
    ),
]
Y = Annotated[str | None, Opt("--y", help="column of the metric's value; default column: value")]
METRIC = Annotated[str | None, Opt("--metric", help="keep rows whose 'metric' column is this")]
SPLIT = Annotated[str | None, Opt("--split", help="keep rows whose 'split' column is this")]
HIGHER_IS_BETTER = Annotated[bool, Opt("--higher-is-better", help="the metric improves upwards (mAP, accuracy)")]
D_FROM_FLOPS = Annotated[bool, Opt("--d-from-flops", help="derive D = C / (k N) instead of reading a D column")]
K = Annotated[float, Opt(*K_OPTION, help="k in C = k N D: FLOPs per parameter per sample (default 6)")]
JSON = Annotated[bool, Opt("--json", help="print JSON instead of tables")]
