"""Budget-aware search: asynchronous successive halving (Li et al. 2020, ASHA) on Optuna's SuccessiveHalvingPruner.

Each (model scale, data scale, seed) cell is one Optuna study, each trial of the cell one Optuna trial, all kept
in one journal file in the study directory (`search.journal`), which Optuna locks for the processes that share it.
A trial reports its eval metric at every eval, in units of its progress through its own budget (1/PROGRESS of
it), so trials of different batch sizes meet at the same fraction of their budgets. At each rung the pruner
promotes a trial only when its value is in the best 1/reduction_factor of the values the cell's trials have
reported there (the first to arrive always goes on: Optuna's rule, as ASHA's paper has it).

A decision is kept with the trial (its `pruned_at` step) before the run acts on it, so a run killed and
resumed acts on the same decision instead of taking it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from scalinglab.study.config import StudyConfig
from scalinglab.study.records import RunSpec, parse_hparams

if TYPE_CHECKING:
    import optuna

JOURNAL = "search.journal"
PROGRESS = 10_000  # a trial's report steps: its progress through its budget in units of 1/PROGRESS


def progress(step: int, total: int) -> int:
    """Step `step` of a `total`-step run, as a report step of 0..PROGRESS."""
    return round(PROGRESS * step / total)


def cell_name(spec: RunSpec) -> str:
    """The Optuna study of a run's cell: the trials that compete with it."""
    return f"m{spec.model_scale:g}-d{spec.data_scale:g}-s{spec.seed}"


def search_metric(config: StudyConfig) -> tuple[str, bool]:
    """The metric a halving search ranks trials by (eval split) and whether higher is better."""
    from scalinglab.tasks import get_task_class

    metrics = get_task_class(config.task).metrics
    name = config.search.metric or next(iter(metrics), "loss")
    return name, name != "loss" and bool(metrics.get(name, False))


def _storage(study_dir: Path) -> optuna.storages.BaseStorage:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study per cell: no "created study" per run
    return JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))


@dataclass
class Halving:
    """One run's trial in its cell's Optuna study: report each eval, learn whether to stop."""

    study: optuna.Study
    trial: optuna.Trial
    trial_id: int
    storage: optuna.storages.BaseStorage

    def _frozen(self) -> optuna.trial.FrozenTrial:
        return self.storage.get_trial(self.trial_id)

    @property
    def pruned_at(self) -> int | None:
        """The training step at which this trial was stopped, when it was."""
        value = self._frozen().user_attrs.get("pruned_at")
        return None if value is None else int(value)

    def report(self, value: float, step: int, total: int) -> bool:
        """Report the metric at training step `step` of `total`; True when the trial stops here.

        The last step is never a rung: a trial that reached its budget completes.
        """
        frozen = self._frozen()
        if "pruned_at" in frozen.user_attrs:
            return step >= int(frozen.user_attrs["pruned_at"])
        if step >= total:
            return False
        at = progress(step, total)
        if at in frozen.intermediate_values:  # a resumed run reports again
            return False
        self.trial.report(value if math.isfinite(value) else math.nan, at)
        if not self.trial.should_prune():
            return False
        self.trial.set_user_attr("pruned_at", step)  # kept before the run acts on it
        return True

    def finish(self, value: float) -> None:
        """Close the trial in Optuna: pruned, or complete with its final value; once, however often called."""
        import optuna

        if self._frozen().state.is_finished():
            return
        if self.pruned_at is not None:
            self.study.tell(self.trial, state=optuna.trial.TrialState.PRUNED)
        elif math.isfinite(value):
            self.study.tell(self.trial, value)
        else:
            self.study.tell(self.trial, state=optuna.trial.TrialState.FAIL)


def open_trial(config: StudyConfig, spec: RunSpec, study_dir: Path) -> Halving:
    """The run's trial in its cell's study (created on the run's first start, found again on a resume).

    The caller holds the run's lock, so no other process opens the same run's trial.
    """
    import optuna

    search = config.search
    _, higher = search_metric(config)
    storage = _storage(study_dir)
    study = optuna.create_study(
        storage=storage,
        study_name=cell_name(spec),
        direction="maximize" if higher else "minimize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, round(search.min_fraction * PROGRESS)), reduction_factor=search.reduction_factor
        ),
        load_if_exists=True,
    )
    for frozen in study.get_trials(deepcopy=False):
        if frozen.user_attrs.get("run_id") == spec.run_id:
            return Halving(study, optuna.Trial(study, frozen._trial_id), frozen._trial_id, storage)
    trial = study.ask()
    trial.set_user_attr("run_id", spec.run_id)
    for key, value in spec.hparams:
        trial.set_user_attr(key, value)
    return Halving(study, trial, trial._trial_id, storage)


def halving_compute(config: StudyConfig, runs: pd.DataFrame) -> dict[str, float] | None:
    """What a halving search saved, from the runs table: trials stopped early, and the training FLOPs of the
    finished runs against those of the same runs each trained to its budget (None without a halving search)."""
    if config.search is None or config.search.method != "halving":
        return None
    done = runs[runs["status"] == "done"]
    trained = full = 0.0
    for row in done.itertuples():
        hparams = dict(parse_hparams(row.hparams))
        steps = config.budget.total_steps(int(row.dataset_size), int(hparams.get("batch_size", config.batch_size)))
        stopped = row.pruned_at if row.pruned_at is not None and not pd.isna(row.pruned_at) else steps
        trained += row.flops_per_step * stopped
        full += row.flops_per_step * steps
    pruned = int(done["pruned_at"].notna().sum())
    saved = 1 - trained / full if full else 0.0
    return {"runs": len(done), "pruned": pruned, "flops_trained": trained, "flops_in_full": full, "saved": saved}
