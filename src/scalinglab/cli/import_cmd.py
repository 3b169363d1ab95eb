"""`scalinglab import`: runs from MLflow, TensorBoard or W&B exports into an observations table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scalinglab.cli.options import grouped, option_group
from scalinglab.cli.render import console, print_json
from scalinglab.errors import UserError

Opt = typer.Option


@option_group("What to read")
class Fields:
    """Which params, tags or metrics of the tracker's runs hold N, D, the metrics, samples seen and FLOPs."""

    n: Annotated[
        str | None, Opt("--n", help="param, tag, hparam, config column or metric holding N, or a number for all runs")
    ] = None
    d: Annotated[str | None, Opt("--d", help="the same for D (default: dataset_size, D, tokens, ...)")] = None
    metric: Annotated[
        list[str] | None, Opt(help="metric to import (key such as eval/loss, or name such as loss); repeatable")
    ] = None
    samples_seen: Annotated[str | None, Opt(help="metric history holding samples seen at each step")] = None
    flops: Annotated[str | None, Opt(help="metric history holding cumulative training FLOPs at each step")] = None
    split: Annotated[str, Opt(help="split of metric keys that name none (eval/loss names eval)")] = "eval"
    runs: Annotated[
        Path | None, Opt(help="table of per-run values (a run column and e.g. N, D columns) joined by run name")
    ] = None

    def importer_options(self) -> dict[str, Any]:
        """The keyword arguments every importer takes."""
        from scalinglab.importers.common import read_runs_table

        runs_table = read_runs_table(self.runs) if self.runs is not None else None
        common = {"n": self.n, "d": self.d, "metrics": self.metric or None, "samples_seen": self.samples_seen}
        return common | {"flops": self.flops, "split": self.split, "runs_table": runs_table}


@option_group("Tracker")
class Tracker:
    """The tracker the runs come from, and the options only one kind of tracker takes."""

    kind: Annotated[str, Opt("--from", help="auto, mlflow, tensorboard or wandb")] = "auto"
    experiment: Annotated[
        list[str] | None, Opt(help="MLflow experiment name or id; repeatable (default: every experiment)")
    ] = None
    filter_string: Annotated[
        str, Opt("--filter", help="MLflow run filter, e.g. \"attributes.status = 'FINISHED'\"")
    ] = ""
    run_column: Annotated[str | None, Opt(help="W&B history: the column naming the run")] = None
    step_column: Annotated[str | None, Opt(help="W&B history: the step column (default _step, Step, step)")] = None

    def resolve(self, sources: list[str]) -> str:
        """The one kind of `sources` (detected when --from auto), its options checked against it."""
        from scalinglab.importers import KINDS, detect

        if self.kind != "auto" and self.kind not in KINDS:
            raise UserError(f"--from must be auto, {', '.join(KINDS)}; not '{self.kind}'")
        kinds = {detect(s) for s in sources} if self.kind == "auto" else {self.kind}
        if len(kinds) > 1:
            raise UserError(
                f"the sources are of different kinds ({', '.join(sorted(kinds))}); import them one at a time"
            )
        kind = kinds.pop()
        if kind != "wandb" and len(sources) > 1:
            raise UserError(f"{kind} reads one source at a time; got {len(sources)}")
        if kind != "mlflow" and (self.experiment or self.filter_string):
            raise UserError("--experiment and --filter are for MLflow sources")
        if kind != "wandb" and (self.run_column or self.step_column):
            raise UserError("--run-column and --step-column are for W&B exports")
        return kind

    def read(self, kind: str, sources: list[str], options: dict[str, Any]) -> Any:
        """The runs of `sources` as an observations table, by the importer of `kind`."""
        if kind == "mlflow":
            from scalinglab.importers.mlflow import import_mlflow

            return import_mlflow(sources[0], self.experiment, filter_string=self.filter_string, **options)
        if kind == "tensorboard":
            from scalinglab.importers.tensorboard import import_tensorboard

            return import_tensorboard(sources[0], **options)
        from scalinglab.importers.wandb import import_wandb

        return import_wandb(sources, run_column=self.run_column, step_column=self.step_column, **options)


SOURCES = Annotated[
    list[str],
    typer.Argument(
        help="an MLflow tracking URI or store folder, a folder of TensorBoard event files, or W&B export files "
        "(.csv, .json, .jsonl; several files are joined by run name)"
    ),
]


@grouped
def import_runs(
    sources: SOURCES,
    output: Annotated[Path, Opt("-o", "--output", help="the observations table to write (.parquet or .csv)")],
    fields: Fields,
    tracker: Tracker,
    as_json: Annotated[bool, Opt("--json", help="print a JSON summary instead of text")] = False,
) -> None:
    """Read runs from an experiment tracker and write them as an observations table."""
    from scalinglab.observations import write_table

    kind = tracker.resolve(sources)
    frame = tracker.read(kind, sources, fields.importer_options())
    write_table(frame, output)
    metrics = frame[["metric", "split"]].drop_duplicates().itertuples(index=False)
    summary = {
        "source": kind,
        "output": str(output),
        "runs": int(frame["run_id"].nunique()),
        "rows": len(frame),
        "metrics": sorted(f"{s}/{m}" for m, s in metrics),
    }
    if as_json:
        return print_json(summary)
    console.print(
        f"{summary['rows']} rows from {summary['runs']} {kind} runs ({', '.join(summary['metrics'])}) "
        f"written to {output}",
        markup=False,
        highlight=False,
    )
