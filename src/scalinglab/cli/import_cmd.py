"""`scalinglab import`: runs from MLflow, TensorBoard or W&B exports into an observations table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli.render import console, print_json
from scalinglab.errors import UserError

Opt = typer.Option


def import_runs(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="an MLflow tracking URI or store folder, a folder of TensorBoard event files, or W&B export files "
            "(.csv, .json, .jsonl; several files are joined by run name)"
        ),
    ],
    output: Annotated[Path, Opt("-o", "--output", help="the observations table to write (.parquet or .csv)")],
    kind: Annotated[str, Opt("--from", help="auto, mlflow, tensorboard or wandb")] = "auto",
    experiment: Annotated[
        list[str] | None, Opt(help="MLflow experiment name or id; repeatable (default: every experiment)")
    ] = None,
    filter_string: Annotated[
        str, Opt("--filter", help="MLflow run filter, e.g. \"attributes.status = 'FINISHED'\"")
    ] = "",
    n: Annotated[
        str | None, Opt("--n", help="param, tag, hparam, config column or metric holding N, or a number for all runs")
    ] = None,
    d: Annotated[str | None, Opt("--d", help="the same for D (default: dataset_size, D, tokens, ...)")] = None,
    metric: Annotated[
        list[str] | None, Opt(help="metric to import (key such as eval/loss, or name such as loss); repeatable")
    ] = None,
    samples_seen: Annotated[str | None, Opt(help="metric history holding samples seen at each step")] = None,
    flops: Annotated[str | None, Opt(help="metric history holding cumulative training FLOPs at each step")] = None,
    split: Annotated[str, Opt(help="split of metric keys that name none (eval/loss names eval)")] = "eval",
    runs: Annotated[
        Path | None, Opt(help="table of per-run values (a run column and e.g. N, D columns) joined by run name")
    ] = None,
    run_column: Annotated[str | None, Opt(help="W&B history: the column naming the run")] = None,
    step_column: Annotated[str | None, Opt(help="W&B history: the step column (default _step, Step, step)")] = None,
    as_json: Annotated[bool, Opt("--json", help="print a JSON summary instead of text")] = False,
) -> None:
    """Read runs from an experiment tracker and write them as an observations table."""
    from scalinglab.importers import KINDS, detect
    from scalinglab.importers.common import read_runs_table
    from scalinglab.observations import write_table

    if kind != "auto" and kind not in KINDS:
        raise UserError(f"--from must be auto, {', '.join(KINDS)}; not '{kind}'")
    kinds = {detect(s) for s in sources} if kind == "auto" else {kind}
    if len(kinds) > 1:
        raise UserError(f"the sources are of different kinds ({', '.join(sorted(kinds))}); import them one at a time")
    kind = kinds.pop()
    if kind != "wandb" and len(sources) > 1:
        raise UserError(f"{kind} reads one source at a time; got {len(sources)}")
    if kind != "mlflow" and (experiment or filter_string):
        raise UserError("--experiment and --filter are for MLflow sources")
    if kind != "wandb" and (run_column or step_column):
        raise UserError("--run-column and --step-column are for W&B exports")
    common = {
        "n": n,
        "d": d,
        "metrics": metric or None,
        "samples_seen": samples_seen,
        "flops": flops,
        "split": split,
        "runs_table": read_runs_table(runs) if runs is not None else None,
    }
    if kind == "mlflow":
        from scalinglab.importers.mlflow import import_mlflow

        frame = import_mlflow(sources[0], experiment, filter_string=filter_string, **common)
    elif kind == "tensorboard":
        from scalinglab.importers.tensorboard import import_tensorboard

        frame = import_tensorboard(sources[0], **common)
    else:
        from scalinglab.importers.wandb import import_wandb

        frame = import_wandb(sources, run_column=run_column, step_column=step_column, **common)
    write_table(frame, output)
    summary = {
        "source": kind,
        "output": str(output),
        "runs": int(frame["run_id"].nunique()),
        "rows": len(frame),
        "metrics": sorted(f"{s}/{m}" for m, s in frame[["metric", "split"]].drop_duplicates().itertuples(index=False)),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"{summary['rows']} rows from {summary['runs']} {kind} runs ({', '.join(summary['metrics'])}) "
            f"written to {output}",
            markup=False,
            highlight=False,
        )
