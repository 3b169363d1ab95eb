"""The driver: plans the runs a study still needs, hands them to an executor, records what comes back.

It alone writes the store, so a killed driver loses at most the runs in flight, and those resume
from their checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from scalinglab.errors import UserError
from scalinglab.study import executors
from scalinglab.study.store import Store
from scalinglab.study.train import RunResult


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def execute(
    store: Store,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    console: Console | None = None,
) -> dict[str, int]:
    """Train every run not yet done; returns the count of runs by final status."""
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, not '{executor}'")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    config = store.config()
    specs = store.runs_to_do(retry_failed)
    runs_dir = store.directory / "runs"
    console = console or Console(stderr=True)
    all_runs = store.runs()
    with _progress(console) as progress:
        overall = progress.add_task(
            "runs", total=len(all_runs), info="", completed=int((all_runs.status == "done").sum())
        )
        bars: dict[str, int] = {}

        def emit(event: tuple) -> None:
            kind = event[0]
            if kind == "start":
                store.mark_running(event[1])
                bars[event[1]] = progress.add_task(f"  {event[1]}", total=None, info="starting")
            elif kind == "progress":
                _, run_id, step, total, loss = event
                if run_id in bars:
                    progress.update(bars[run_id], completed=step, total=total, info=f"loss {loss:.4g}")
            elif kind == "done":
                result: RunResult = event[1]
                store.record_done(result)
                _finish(progress, bars, result.run_id)
                progress.advance(overall)
            elif kind == "failed":
                store.mark_failed(event[1], event[2])
                _finish(progress, bars, event[1])
                console.print(f"run {event[1]} failed: {event[2]}", markup=False, highlight=False)
                progress.advance(overall)

        started = time.perf_counter()
        if executor == "ray":
            executors.run_ray(config, specs, runs_dir, emit, address)
        elif workers == 1:
            executors.run_sequential(config, specs, runs_dir, emit)
        else:
            executors.run_local_pool(config, specs, runs_dir, emit, workers)
        progress.update(overall, info=f"{time.perf_counter() - started:.1f}s")
    counts = store.runs()["status"].value_counts().to_dict()
    return {k: int(v) for k, v in counts.items()}


def _finish(progress: Progress, bars: dict[str, int], run_id: str) -> None:
    task = bars.pop(run_id, None)
    if task is not None:
        progress.remove_task(task)


def export(store: Store, output: Path) -> int:
    """Write the observations table (CSV or parquet by suffix), atomically; returns the row count."""
    obs = store.observations()
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(f"{output}: unknown file type '{suffix}'; use .csv or .parquet")
    tmp = output.with_name(output.name + ".tmp")
    if suffix == ".csv":
        obs.to_csv(tmp, index=False)
    else:
        obs.to_parquet(tmp, index=False)
    tmp.replace(output)
    return len(obs)
