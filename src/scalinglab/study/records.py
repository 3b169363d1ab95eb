"""The plain records a study passes around: what a run is, what it returns, and the executors' events.

Torch-free on purpose: the store, the driver and the CLI's status and export read these without
paying for the training stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: a model scale, a data scale and a seed (and a search's trial: its hyperparameters)."""

    run_id: str
    model_scale: float
    data_scale: float
    seed: int
    hparams: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:  # a spec back from JSON or SQLite holds lists or a JSON text
        object.__setattr__(self, "hparams", parse_hparams(self.hparams))


def parse_hparams(value: object) -> tuple[tuple[str, float], ...]:
    """A trial's hyperparameters as (key, value) pairs, from pairs, lists or the runs table's JSON text."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return tuple((str(k), float(v)) for k, v in (value or ()))


@dataclass
class RunResult:
    """A finished run: its observation rows (in `observations.COLUMNS` order) and its sizes."""

    run_id: str
    rows: list[dict]
    n_params: int
    n_params_nonembed: int
    dataset_size: int
    flops_per_step: float
    resumed_from_step: int
    parent: str | None = None  # a cooldown branch's trunk run (study.branches)
    shared_steps: int = 0  # the steps the branch took from its trunk instead of training them
    pruned_at: int | None = None  # a halving search stopped this trial at this step (study.pruning)


# Events an executor reports to the driver's `emit`; the driver alone turns them into store writes.


@dataclass(frozen=True)
class Started:
    """A process holds the run's lock and is training it."""

    run_id: str


@dataclass(frozen=True)
class Progress:
    run_id: str
    step: int
    total: int
    loss: float


@dataclass(frozen=True)
class Notice:
    """Something the user should read in one line, e.g. a checkpoint that was set aside."""

    run_id: str
    text: str


@dataclass(frozen=True)
class Done:
    result: RunResult

    @property
    def run_id(self) -> str:
        return self.result.run_id


@dataclass(frozen=True)
class Failed:
    run_id: str
    error: str


@dataclass(frozen=True)
class Skipped:
    """Another live process holds the run's lock; the run is left for a later resume."""

    run_id: str
    reason: str


Event = Started | Progress | Notice | Done | Failed | Skipped
