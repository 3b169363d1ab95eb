"""Cooldown branches (Hagele et al. 2024, arXiv 2405.18392): a study's data scales from one run per model size.

With `branches: true` and a wsd schedule, every cell of one (model scale, seed) draws its batches from the
training set of the largest data scale, in the same order, for the steps its own data scale's budget gives.
Under wsd those cells take the same batches at the same rate until the shorter one's cooldown starts, so they
are the same run up to there: the longest cell (the trunk) trains in full and saves its state at each shorter
cell's cooldown start (`branch-STEP.pt` in its run folder); each shorter cell (a branch) starts from that state
and trains its cooldown only. A branch whose trunk state is missing trains from step 0, which gives the same
run at the full cost. A branch cell's `dataset_size` is the distinct samples it sees, min(steps x batch, the
pool): the data scale sets how much a cell trains on, not a smaller set it repeats.

Torch-free: the driver plans the waves (trunks first, then the branches) without the training stack.
"""

from __future__ import annotations

import pandas as pd

from scalinglab.study.config import ScheduleConfig, StudyConfig
from scalinglab.study.records import RunSpec
from scalinglab.study.store import run_id_for


def branch_file(step: int) -> str:
    """The trunk's saved state at `step`, in its run folder."""
    return f"branch-{step}.pt"


def decay_start(total: int, schedule: ScheduleConfig) -> int:
    """The first step of a `total`-step wsd run's cooldown (the schedule's own rule, `study.schedule`)."""
    return total - max(1, round(schedule.decay_fraction * total))


def trunk_of(config: StudyConfig, spec: RunSpec) -> RunSpec | None:
    """The trunk a cell branches from: its (model scale, seed) at the largest data scale; None for the trunk
    itself and in a study without branches."""
    largest = max(config.data_scales)
    if not config.branches or spec.data_scale == largest:
        return None
    return RunSpec(run_id_for(spec.model_scale, largest, spec.seed), spec.model_scale, largest, spec.seed)


def branch_step(total: int, trunk_total: int, schedule: ScheduleConfig) -> int | None:
    """Where a `total`-step cell leaves a `trunk_total`-step trunk: its cooldown start, when the trunk is still
    in its stable phase there (else None: the cell trains alone)."""
    start = decay_start(total, schedule)
    return start if 0 < start <= decay_start(trunk_total, schedule) and total < trunk_total else None


def waves(config: StudyConfig, specs: list[RunSpec]) -> list[list[RunSpec]]:
    """The order to train `specs` in: everything but the branches first, then the branches (their trunks'
    states exist by then, or the branch trains from step 0)."""
    later = [s for s in specs if trunk_of(config, s) is not None]
    first = [s for s in specs if trunk_of(config, s) is None]
    return [wave for wave in (first, later) if wave]


def branch_compute(runs: pd.DataFrame, observations: pd.DataFrame) -> dict[str, float] | None:
    """The training FLOPs of the finished runs counted in full per cell, and as trained (each trunk's shared
    steps once); None when no run branched."""
    done = runs[(runs["status"] == "done") & runs["flops_per_step"].notna()]
    if "shared_steps" not in done or not (done["shared_steps"].fillna(0) > 0).any():
        return None
    steps = observations.groupby("run_id")["steps"].max()
    full = float((done["run_id"].map(steps) * done["flops_per_step"]).sum())
    shared = float((done["shared_steps"].fillna(0) * done["flops_per_step"]).sum())
    branches = int((done["shared_steps"].fillna(0) > 0).sum())
    return {"branches": branches, "flops_in_full": full, "flops_trained": full - shared, "saved": shared / full}
