"""`scalinglab study run|resume|status|export`: run a scaling sweep and get its observations out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scalinglab.cli.render import console

app = typer.Typer(
    help="Run a scaling study (a grid of model x data scales) and export its observations.", no_args_is_help=True
)
Opt = typer.Option
RAY_TIMEOUT = 30.0  # the default of --ray-timeout; scalinglab.study.executors.RAY_TIMEOUT, without importing it
RayTimeout = Annotated[
    float, Opt(envvar="SCALINGLAB_RAY_TIMEOUT", help="seconds to reach the Ray cluster before giving up")
]


JsonFlag = Annotated[bool, Opt("--json", help="print JSON instead of text (progress stays on stderr)")]


def _summary(counts: dict[str, int], directory: Path, as_json: bool = False) -> None:
    if as_json:
        from scalinglab.cli.render import print_json

        print_json({"directory": str(directory), "counts": {k: int(v) for k, v in sorted(counts.items())}})
        return
    text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    console.print(f"study {directory}: {text}")


@app.command("run")
def run(
    config_file: Annotated[Path, typer.Argument(help="study config (YAML)")],
    output: Annotated[Path | None, Opt("-o", "--output", help="study directory [study-<name>]")] = None,
    executor: Annotated[str, Opt(help="local or ray")] = "local",
    workers: Annotated[int, Opt(help="local worker processes")] = 1,
    address: Annotated[str | None, Opt(help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")] = None,
    ray_timeout: RayTimeout = RAY_TIMEOUT,
    as_json: JsonFlag = False,
) -> None:
    """Train every cell of the study's grid; a second run on the same directory resumes it."""
    from scalinglab.study.config import load_config
    from scalinglab.study.runner import check_executor, execute
    from scalinglab.study.store import Store

    check_executor(executor, workers, address, ray_timeout)  # before anything is created
    config = load_config(config_file)
    check_executor(executor, workers, address, ray_timeout, connect=True)  # an unreachable Ray creates nothing
    directory = output or Path(f"study-{config.name}")
    store = Store.create(directory, config)
    _summary(execute(store, executor, workers, address, ray_timeout=ray_timeout), directory, as_json)


@app.command("resume")
def resume(
    directory: Annotated[Path, typer.Argument(help="study directory")],
    executor: Annotated[str, Opt(help="local or ray")] = "local",
    workers: Annotated[int, Opt(help="local worker processes")] = 1,
    address: Annotated[str | None, Opt(help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")] = None,
    retry_failed: Annotated[bool, Opt(help="also train the runs that failed")] = False,
    ray_timeout: RayTimeout = RAY_TIMEOUT,
    as_json: JsonFlag = False,
) -> None:
    """Continue an interrupted study: finished runs are kept, interrupted ones continue from their checkpoint."""
    from scalinglab.study.runner import check_executor, execute
    from scalinglab.study.store import Store

    store = Store.open(directory)
    check_executor(executor, workers, address, ray_timeout, connect=True)
    _summary(execute(store, executor, workers, address, retry_failed, ray_timeout=ray_timeout), directory, as_json)


@app.command("status")
def status(
    directory: Annotated[Path, typer.Argument(help="study directory")],
    as_json: Annotated[bool, Opt("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Each run's status, size and error, and the metrics the study records."""
    from scalinglab.study.branches import branch_compute
    from scalinglab.study.pruning import halving_compute
    from scalinglab.study.store import Store

    store = Store.open(directory)
    runs = store.runs()
    if as_json:
        from scalinglab.cli.render import print_json, records

        obs = store.observations()
        metrics = [
            {"metric": str(m), "splits": sorted(map(str, rows["split"].unique())), "rows": len(rows)}
            for m, rows in obs.groupby("metric", sort=True)
        ]
        counts = {str(k): int(v) for k, v in runs["status"].value_counts().items()}
        saved, halving = branch_compute(runs, obs), halving_compute(store.config(), runs)
        print_json(
            {"directory": str(directory), "counts": counts, "runs": records(runs), "metrics": metrics}
            | ({} if saved is None else {"branches": saved})
            | ({} if halving is None else {"halving": halving})
        )
        return
    table = Table(title=f"study {directory}", title_justify="left")
    for col in ("run_id", "status", "n_params", "dataset_size", "attempts", "error"):
        table.add_column(col)
    for row in runs.itertuples():
        sizes = [_cell(v, count=True) for v in (row.n_params, row.dataset_size, row.attempts)]
        table.add_row(row.run_id, row.status, *sizes, _cell(row.error))
    console.print(table)
    _summary({k: int(v) for k, v in runs["status"].value_counts().items()}, directory)
    obs = store.observations()
    _branches(branch_compute(runs, obs))
    _search(store.config(), halving_compute(store.config(), runs))
    _metrics(obs)


def _search(config: Any, halving: dict[str, float] | None) -> None:
    """How many trials each cell has and over what, for a study with a search; what halving saved."""
    search = config.search
    if search is None:
        return
    listed = ", ".join(f"{k} ({len(v)} values)" for k, v in search.space().items())
    console.print(f"search: {len(search.trials())} trials per cell over {listed}", highlight=False)
    if halving is not None:
        rungs = ", ".join(f"{r:.0%}" for r in search.rungs())
        console.print(
            f"halving: the best 1/{search.reduction_factor} of each cell's trials go on at each rung ({rungs} of "
            f"the budget); {halving['pruned']} of {halving['runs']} finished trials stopped early; training FLOPs "
            f"{halving['flops_trained']:.3g} against {halving['flops_in_full']:.3g} for the full grid: "
            f"{halving['saved']:.0%} saved",
            highlight=False,
            soft_wrap=True,
        )


def _branches(saved: dict[str, float] | None) -> None:
    if saved is not None:
        console.print(
            f"branches: {saved['branches']} cells cooled down from their trunks; training FLOPs "
            f"{saved['flops_trained']:.3g} as trained (each trunk once) against {saved['flops_in_full']:.3g} "
            f"counted in full per cell: {saved['saved']:.0%} saved"
        )


def _metrics(obs: Any) -> None:
    """The metrics recorded so far: each with its splits, direction and rows (what `report --metric` takes)."""
    if obs.empty:
        console.print("metrics: none recorded yet")
        return
    table = Table(title="metrics (for report --metric, fit --metric)", title_justify="left")
    for col in ("metric", "splits", "better", "rows", "runs"):
        table.add_column(col)
    for metric, rows in obs.groupby("metric", sort=True):
        higher = "higher_is_better" in rows and bool(rows["higher_is_better"].iloc[0])
        splits = ", ".join(sorted(str(s) for s in rows["split"].unique())) if "split" in rows else ""
        table.add_row(
            str(metric), splits, "higher" if higher else "lower", f"{len(rows):,}", str(rows["run_id"].nunique())
        )
    console.print(table)


def _cell(value: Any, count: bool = False) -> str:
    """A store value as table text; a NULL (None, or NaN / NA once pandas has read it) is blank."""
    import pandas as pd

    if value is None or pd.isna(value):
        return ""
    return f"{int(value):,}" if count else str(value)


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="study directory")],
    output: Annotated[Path, Opt("-o", "--output", help="observations file (.csv or .parquet)")],
    pruned: Annotated[
        bool, Opt(help="also the trials a halving search stopped early, with a column pruned_at (their last step)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the observations table that `scalinglab fit` and `scalinglab optimal` read as they are."""
    from scalinglab.study.runner import export as export_table
    from scalinglab.study.store import Store

    rows = export_table(Store.open(directory), output, pruned)
    if as_json:
        from scalinglab.cli.render import print_json

        print_json({"output": str(output), "rows": rows})
        return
    console.print(f"{rows} observations written to {output}")
