"""The driver: plans the runs a study still needs, hands them to an executor, records what comes back.

It alone writes the store, so a killed driver loses at most the runs in flight, and those resume
from their checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Display

from scalinglab.errors import UserError
from scalinglab.study import executors
from scalinglab.study.config import check_task_options
from scalinglab.study.records import Done, Event, Failed, Notice, Progress, Skipped, Started
from scalinglab.study.store import Store
from scalinglab.study.tracking import Tracker

EXECUTORS = ("local", "ray")


def _display(console: Console) -> Display:
    return Display(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def check_executor(
    executor: str, workers: int, address: str | None, ray_timeout: float, connect: bool = False
) -> str | None:
    """Validate the executor options before anything is created; returns the Ray address to use.

    With `connect`, also join (or start) Ray, so an unreachable cluster is one line before anything is written.
    """
    if executor not in EXECUTORS:
        raise UserError(f"--executor must be local or ray, not '{executor}'")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if not ray_timeout > 0:
        raise UserError(f"--ray-timeout must be > 0 seconds, got {ray_timeout:g}")
    if executor != "ray":
        if address is not None:
            raise UserError("--address is for --executor ray")
        return None
    address = executors.resolve_ray_address(address)
    if connect:
        executors.connect_ray(address, ray_timeout)
    return address


def execute(
    store: Store,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    console: Console | None = None,
    ray_timeout: float = executors.RAY_TIMEOUT,
) -> dict[str, int]:
    """Train every run not yet done; returns the count of runs by final status."""
    address = check_executor(executor, workers, address, ray_timeout, connect=True)  # before the display starts
    config = store.config()
    check_task_options(config, str(store.path))
    specs = store.runs_to_do(retry_failed)
    runs_dir = store.directory / "runs"
    console = console or Console(stderr=True)
    all_runs = store.runs()
    with _display(console) as display, Tracker(config, store.directory, specs) as track:
        overall = display.add_task(
            "runs", total=len(all_runs), info="", completed=int((all_runs.status == "done").sum())
        )
        bars: dict[str, int] = {}
        marked: set[str] = set()  # runs this driver marked running

        def say(text: str) -> None:
            console.print(text, markup=False, highlight=False, soft_wrap=True)  # one line, however long

        def emit(event: Event) -> None:
            run_id = event.run_id
            if isinstance(event, (Done, Failed)) and run_id not in marked:  # it ended before it could start
                emit(Started(run_id))
            track(event)  # mirrors to TensorBoard / MLflow when the config's `logging:` asks for it
            if isinstance(event, Started):
                store.mark_running(run_id)
                marked.add(run_id)
                bars[run_id] = display.add_task(f"  {run_id}", total=None, info="starting")
            elif isinstance(event, Progress):
                if run_id in bars:
                    info = f"loss {event.loss:.4g}"
                    display.update(bars[run_id], completed=event.step, total=event.total, info=info)
            elif isinstance(event, Notice):
                say(f"run {run_id}: {event.text}")
            elif isinstance(event, Done):
                store.record_done(event.result)
                _finish(display, bars, run_id)
                display.advance(overall)
            elif isinstance(event, Failed):
                store.mark_failed(run_id, event.error)
                _finish(display, bars, run_id)
                say(f"run {run_id} failed: {event.error}")
                display.advance(overall)
            elif isinstance(event, Skipped):
                if run_id in marked:
                    store.mark_not_running(run_id)
                _finish(display, bars, run_id)
                say(f"run {run_id} skipped: {event.reason}; resume the study once that process has ended")

        started = time.perf_counter()
        if executor == "ray":
            executors.run_ray(config, specs, runs_dir, emit, address, ray_timeout)
        elif workers == 1:
            executors.run_sequential(config, specs, runs_dir, emit)
        else:
            executors.run_local_pool(config, specs, runs_dir, emit, workers)
        display.update(overall, info=f"{time.perf_counter() - started:.1f}s")
    counts = store.runs()["status"].value_counts().to_dict()
    return {k: int(v) for k, v in counts.items()}


def _finish(display: Display, bars: dict[str, int], run_id: str) -> None:
    task = bars.pop(run_id, None)
    if task is not None:
        display.remove_task(task)


def export(store: Store, output: Path) -> int:
    """Write the observations table (CSV or parquet by suffix), atomically; returns the row count.

    A missing parent folder is created; a file that cannot be written is a UserError naming it.
    """
    from scalinglab.observations import write_table

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):  # before reading the store
        raise UserError(f"{output}: unknown file type '{suffix}'; use .csv or .parquet")
    obs = store.observations()
    write_table(obs, output)
    return len(obs)
