"""The driver: plans the runs a study still needs, hands them to an executor, records what comes back.

It alone writes the store, so a killed driver loses at most the runs in flight, and those resume
from their checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Display

from scalinglab.errors import UserError
from scalinglab.study import executors
from scalinglab.study.branches import waves
from scalinglab.study.config import StudyConfig, check_task_options
from scalinglab.study.records import Done, Event, Failed, Notice, Progress, RunSpec, Skipped, Started
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


@dataclass(frozen=True)
class _Executor:
    """Where the runs train: the executor's name, the local workers, and Ray's address and timeout."""

    name: str
    workers: int
    address: str | None
    ray_timeout: float

    def run(self, config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: executors.Emit) -> None:
        """Train `specs` on this executor; every event comes back through `emit`."""
        if self.name == "ray":
            executors.run_ray(config, specs, runs_dir, emit, self.address, self.ray_timeout)
        elif self.workers == 1:
            executors.run_sequential(config, specs, runs_dir, emit)
        else:
            executors.run_local_pool(config, specs, runs_dir, emit, self.workers)


class _Recorder:
    """The driver's `emit`: records each run's events in the store, the trackers and the progress display."""

    def __init__(self, store: Store, display: Display, track: Tracker, console: Console, overall: TaskID) -> None:
        self.store, self.display, self.track, self.console, self.overall = store, display, track, console, overall
        self.bars: dict[str, int] = {}
        self.marked: set[str] = set()  # runs this driver marked running

    def say(self, text: str) -> None:
        """One line on the console, however long."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        """Record one event; a run that ended before it could start is marked started first."""
        run_id = event.run_id
        if isinstance(event, (Done, Failed)) and run_id not in self.marked:  # it ended before it could start
            self(Started(run_id))
        self.track(event)  # mirrors to TensorBoard / MLflow when the config's `logging:` asks for it
        if isinstance(event, Started):
            self.store.mark_running(run_id)
            self.marked.add(run_id)
            self.bars[run_id] = self.display.add_task(f"  {run_id}", total=None, info="starting")
        elif isinstance(event, Progress):
            if run_id in self.bars:
                info = f"loss {event.loss:.4g}"
                self.display.update(self.bars[run_id], completed=event.step, total=event.total, info=info)
        elif isinstance(event, Notice):
            self.say(f"run {run_id}: {event.text}")
        elif isinstance(event, Done):
            self._done(event)
        elif isinstance(event, Failed):
            self._failed(event)
        elif isinstance(event, Skipped):
            self._skipped(event)

    def _done(self, event: Done) -> None:
        """A finished run: its result in the store, its bar removed, the overall bar advanced."""
        self.store.record_done(event.result)
        _finish(self.display, self.bars, event.run_id)
        self.display.advance(self.overall)

    def _failed(self, event: Failed) -> None:
        """A failed run: its error in the store and on the console, its bar removed, the overall bar advanced."""
        self.store.mark_failed(event.run_id, event.error)
        _finish(self.display, self.bars, event.run_id)
        self.say(f"run {event.run_id} failed: {event.error}")
        self.display.advance(self.overall)

    def _skipped(self, event: Skipped) -> None:
        """A run another process holds: no longer marked running by this driver, its bar removed, said why."""
        run_id = event.run_id
        if run_id in self.marked:
            self.store.mark_not_running(run_id)
        _finish(self.display, self.bars, run_id)
        self.say(f"run {run_id} skipped: {event.reason}; resume the study once that process has ended")


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
        emit = _Recorder(store, display, track, console, overall)
        started = time.perf_counter()
        for wave in waves(config, specs):  # cooldown branches after their trunks (study.branches)
            _Executor(executor, workers, address, ray_timeout).run(config, wave, runs_dir, emit)
        display.update(overall, info=f"{time.perf_counter() - started:.1f}s")
    counts = store.runs()["status"].value_counts().to_dict()
    return {k: int(v) for k, v in counts.items()}


def _finish(display: Display, bars: dict[str, int], run_id: str) -> None:
    task = bars.pop(run_id, None)
    if task is not None:
        display.remove_task(task)


def export(store: Store, output: Path, pruned: bool = False) -> int:
    """Write the observations table (CSV or parquet by suffix), atomically; returns the row count. With `pruned`,
    also the rows of the trials a halving search stopped early (column `pruned_at`).

    A missing parent folder is created; a file that cannot be written is a UserError naming it.
    """
    from scalinglab.observations import write_table

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):  # before reading the store
        raise UserError(f"{output}: unknown file type '{suffix}'; use .csv or .parquet")
    obs = store.observations(pruned)
    write_table(obs, output)
    return len(obs)
