"""The training loop, one for every task: train a run, evaluate every K steps, checkpoint, resume.

Observation rows travel inside the checkpoint, so a run resumed from its last checkpoint returns all
of its rows exactly once; the driver writes them when the run is done.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.errors import UserError
from scalinglab.observations import observation_row
from scalinglab.study.branches import branch_file, branch_step, trunk_of
from scalinglab.study.config import StudyConfig
from scalinglab.study.lock import run_lock
from scalinglab.study.records import Event, Notice, Progress, RunResult, RunSpec, Started
from scalinglab.study.schedule import lr_factor
from scalinglab.study.storage import Folder, run_folder
from scalinglab.tasks import build_task
from scalinglab.tasks.base import Task, TaskData, eval_split

__all__ = [
    "Replica",
    "RunResult",
    "RunSpec",
    "autocast",
    "measure_step_flops",
    "resolve_device",
    "sample_indices",
    "train_run",
    "uses_bf16",
]

PROGRESS_EVERY = 10  # steps between progress reports of the training loss
CHECKPOINT = "checkpoint.pt"
Report = Callable[[Event], None]  # receives Started, Progress and Notice events


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def uses_bf16(config: StudyConfig, device: torch.device) -> bool:
    """The study's precision: bf16 autocast with `precision: bf16`, or `auto` on CUDA; fp32 otherwise."""
    return config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")


def autocast(config: StudyConfig, device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=uses_bf16(config, device))


@dataclass(frozen=True)
class Replica:
    """This process's place in a data-parallel run: rank `rank` of `world` processes.

    Each takes an equal, contiguous shard of the same global batch; the training loss is averaged over
    them, so every number a run records is that of the global batch. One process: rank 0 of 1.
    """

    rank: int = 0
    world: int = 1

    @property
    def chief(self) -> bool:
        """The process that evaluates, reports progress and writes the checkpoint."""
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        return indices if self.world == 1 else indices.tensor_split(self.world)[self.rank]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over the processes of a per-process value (each the mean over an equal shard)."""
        if self.world == 1:
            return value
        total = value.clone()
        torch.distributed.all_reduce(total)  # SUM: gloo has no AVG
        return total / self.world


def sample_indices(step: int, batch_size: int, dataset_size: int, seed: int) -> torch.Tensor:
    """The sample indices of optimiser step `step`: consecutive slices of per-epoch permutations.

    A pure function of the step, so a resumed run sees exactly the batches it would have seen.
    """
    start = step * batch_size
    parts, have = [], 0
    while have < batch_size:
        epoch, offset = divmod(start + have, dataset_size)
        part = _epoch_permutation(dataset_size, seed, epoch)[offset : offset + batch_size - have]
        parts.append(part)
        have += part.numel()
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@functools.lru_cache(maxsize=4)
def _epoch_permutation(dataset_size: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(dataset_size, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def measure_step_flops(task: Task, model: torch.nn.Module, batch) -> float:
    """FLOPs of one training step (forward + backward) on the real batch, by PyTorch's counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        task.loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _optimizer(config: StudyConfig, task: Task, model: torch.nn.Module, dataset_size: int) -> torch.optim.Optimizer:
    """The config's optimiser over the task's parameter groups (each rate times its group's `lr_scale`: muP);
    with `optimizer.lr_law` the rate is the law's at this model's N and this D."""
    opt = config.optimizer
    lr = config.base_lr(sum(p.numel() for p in model.parameters()), dataset_size)
    groups = [{"params": g["params"], "lr": lr * g.get("lr_scale", 1.0)} for g in task.optimizer_groups(model)]
    if opt.name == "sgd":
        if any(g["lr"] != lr for g in groups):
            raise UserError("the task's muP rates are Adam's: use optimizer.name adamw")
        return torch.optim.SGD(groups, lr=lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=opt.betas, weight_decay=opt.weight_decay)


@dataclass
class _Run:
    """What a run trains with; built the same way (same seed, same order) for a fresh start and a resume."""

    spec: RunSpec
    device: torch.device
    task: Task
    data: TaskData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total: int
    n_params: int
    n_nonembed: int
    forward: torch.nn.Module | None = None  # what the training loss runs through (compiled, DDP); else `model`
    dataset_size: int | None = None  # the D recorded (a branch study's cell: the distinct samples it sees)
    branch_points: tuple[int, ...] = ()  # a trunk's steps at which to save its state for a branch
    branch: tuple[RunSpec, int] | None = None  # a branch's trunk and the step it leaves it at

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.model
        if self.dataset_size is None:
            self.dataset_size = self.data.dataset_size


@dataclass
class _State:
    """What a checkpoint carries besides the modules' state."""

    step: int = 0
    rows: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    flops_per_step: float | None = None
    resumed_from: int = 0
    window: tuple[float, int] = (0.0, 0)  # the training-loss sum and count since the last eval
    shared_steps: int = 0  # a branch's steps taken from its trunk
    pruned_at: int | None = None  # a halving search stopped this trial here (study.pruning)


def _build(config: StudyConfig, spec: RunSpec, device: torch.device) -> _Run:
    task = build_task(config.task, config.task_options)
    torch.manual_seed(spec.seed)
    pool_scale = max(config.data_scales) if config.branches else spec.data_scale
    data = task.build_data(pool_scale, spec.seed)
    model = task.build_model(spec.model_scale, config.scale_by).to(device)
    optimizer = _optimizer(config, task, model, data.dataset_size)
    total = config.budget.total_steps(data.dataset_size, config.batch_size)
    plan = _branch_plan(config, spec, task, data.dataset_size) if config.branches else {}
    total = plan.get("total", total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config.schedule))
    n_params = sum(p.numel() for p in model.parameters())
    n_nonembed = n_params - task.embedding_parameters(model)
    forward = torch.compile(model) if config.compile else model  # shares the parameters; `model` is checkpointed
    run = _Run(spec, device, task, data, model, optimizer, scheduler, total, n_params, n_nonembed, forward)
    if config.branches:
        run.dataset_size = min(total * config.batch_size, data.dataset_size)
        run.branch_points, run.branch = plan["points"], plan["branch"]
    return run


def _branch_plan(config: StudyConfig, spec: RunSpec, task: Task, pool: int) -> dict[str, Any]:
    """A branch study's cell: its own length (from its data scale's size), the steps at which a trunk saves its
    state for its branches, and for a branch its trunk and the step it leaves it at (`study.branches`)."""
    largest = max(config.data_scales)
    with torch.random.fork_rng():  # sizing the other data scales leaves the run's random stream as it was
        sizes = {k: pool if k == largest else task.build_data(k, spec.seed).dataset_size for k in config.data_scales}
    totals = {k: config.budget.total_steps(size, config.batch_size) for k, size in sizes.items()}
    trunk_total = totals[largest]
    trunk = trunk_of(config, spec)
    if trunk is None:
        points = (branch_step(t, trunk_total, config.schedule) for k, t in totals.items() if k != spec.data_scale)
        return {"total": trunk_total, "points": tuple(sorted({p for p in points if p})), "branch": None}
    step = branch_step(totals[spec.data_scale], trunk_total, config.schedule)
    return {"total": totals[spec.data_scale], "points": (), "branch": None if step is None else (trunk, step)}


def run_config(config: StudyConfig, spec: RunSpec) -> StudyConfig:
    """What the run trains with: a search's trial's hyperparameters in place, and with `batch_size_law` the
    batch size the law gives at this model's N and this D (the nearest multiple of `workers_per_run`)."""
    config = config.for_trial(spec.hparams)
    law = config.batch_size_law
    if law is None:
        return config
    task = build_task(config.task, config.task_options)
    with torch.random.fork_rng():  # built as `_build` builds them: the same seed, the run's stream untouched
        torch.manual_seed(spec.seed)
        size = task.build_data(spec.data_scale, spec.seed).dataset_size
        n_params = sum(p.numel() for p in task.build_model(spec.model_scale, config.scale_by).parameters())
    workers = config.resources.workers_per_run
    batch = max(workers, workers * round(law.at(n_params, size) / workers))
    return config.model_copy(update={"batch_size": int(batch)})


def build_run(config: StudyConfig, spec: RunSpec, device: torch.device) -> _Run:
    """The run's task, data, model, optimiser and schedule, built the same way on every process."""
    return _build(config, spec, device)


RunState = _State  # what a checkpoint carries besides the modules' state


class _Unusable(Exception):
    """A checkpoint that cannot resume this run; the message says why in a few words."""


def _restore(run: _Run, data: bytes) -> _State:
    """Load a checkpoint into `run`; _Unusable when it cannot be read or does not fit this run."""
    try:
        saved = torch.load(io.BytesIO(data), map_location=run.device, weights_only=True)
    except Exception as exc:  # torch's own message runs to many lines and advises unsafe loading
        raise _Unusable(f"not a readable checkpoint ({type(exc).__name__})") from exc
    try:
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        step = saved["step"]
        if not isinstance(step, int) or not 0 < step <= run.total:
            raise ValueError(f"step {step!r} is outside this run's 1..{run.total}")
        torch.set_rng_state(saved["rng"])
        window = saved.get("window", (0.0, 0))
        state = _State(step, list(saved["rows"]), float(saved["elapsed"]), saved["flops_per_step"], step)
        state.window, state.shared_steps = (float(window[0]), int(window[1])), int(saved.get("shared_steps", 0))
        state.pruned_at = saved.get("pruned_at")
        return state
    except Exception as exc:
        raise _Unusable(f"it does not fit this run ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    first = first if len(first) <= 100 else first[:97] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def restore_run(run: _Run, data: bytes) -> _State:
    """Load checkpoint bytes into `run`; ValueError (saying why in a few words) when they do not fit it."""
    try:
        return _restore(run, data)
    except _Unusable as exc:
        raise ValueError(str(exc)) from exc


def _start(
    config: StudyConfig, spec: RunSpec, folder: Folder, report: Report | None, run_dir: Path | None = None
) -> tuple[_Run, _State]:
    """The run, from its checkpoint when there is one that loads; a branch without one from its trunk's state
    at its cooldown start; from scratch otherwise.

    A checkpoint that cannot be loaded (corrupt, or from another model) is set aside, not deleted, and the
    run starts over from a fresh build: a user rerunning the study gets a complete run, not a failure.
    """
    device = resolve_device(config.device)
    run = _build(config, spec, device)
    if not folder.exists(CHECKPOINT):
        if run.branch is not None and run_dir is not None:
            return _from_trunk(config, run, Path(run_dir).parent, report)
        return run, _State()
    try:
        return run, _restore(run, folder.read(CHECKPOINT))
    except _Unusable as exc:
        aside = CHECKPOINT + ".corrupt"
        folder.move(CHECKPOINT, aside)
        if report is not None:
            where = folder.describe(CHECKPOINT)
            what = f"checkpoint {where} could not be loaded: {exc}; moved to {aside}, training from step 0"
            report(Notice(spec.run_id, what))
        return _build(config, spec, device), _State()  # the failed restore may have changed the model


def _from_trunk(config: StudyConfig, run: _Run, runs_dir: Path, report: Report | None) -> tuple[_Run, _State]:
    """A branch started from its trunk's saved state: the trunk's rows so far become the branch's own (the same
    steps of the same run), relabelled with the branch's cell; from step 0 when that state is missing."""
    trunk, step = run.branch
    folder = run_folder(config.storage, runs_dir / trunk.run_id)
    name = branch_file(step)
    try:
        if not folder.exists(name):
            raise _Unusable(f"its trunk {trunk.run_id} has no saved state at step {step}")
        state = _restore(run, folder.read(name))
    except _Unusable as exc:
        if report is not None:
            report(Notice(run.spec.run_id, f"not branched: {exc}; training from step 0"))
        return _build(config, run.spec, run.device), _State()
    for group, base in zip(run.optimizer.param_groups, run.scheduler.base_lrs, strict=True):
        group["lr"] = base * lr_factor(step, run.total, config.schedule)  # the trunk set its own next rate
    cell = {"run_id": run.spec.run_id, "data_scale": run.spec.data_scale, "dataset_size": run.dataset_size}
    state.rows = [row | cell for row in state.rows]
    state.resumed_from, state.shared_steps = 0, step
    return run, state


def branch_start(config: StudyConfig, run: _Run, runs_dir: Path) -> tuple[_Run, _State]:
    """A branch's start from its trunk's saved state (from step 0 when that state is missing), for a process that
    has no checkpoint of its own: a data-parallel replica."""
    return _from_trunk(config, run, runs_dir, None)


def _evaluate(config: StudyConfig, run: _Run, state: _State, train_loss: float, started: float) -> list[dict]:
    """The rows of one eval: the mean training loss since the last eval, and each eval metric on each eval set
    (split "eval" for the task's own, "eval:NAME" for a named extra set)."""
    autocast = torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=uses_bf16(config, run.device))
    sets = {eval_split(None): run.data.eval} | {eval_split(k): v for k, v in run.data.extra_evals.items()}
    run.model.eval()
    with autocast:
        scored = {split: run.task.evaluate(run.model, data, run.device) for split, data in sets.items()}
    run.model.train()
    step = state.step
    point = {
        "run_id": run.spec.run_id,
        "n_params": run.n_params,
        "n_params_nonembed": run.n_nonembed,
        "dataset_size": run.dataset_size,
        "model_scale": run.spec.model_scale,
        "data_scale": run.spec.data_scale,
        "seed": run.spec.seed,
        "samples_seen": step * config.batch_size,
        "steps": step,
        "flops": state.flops_per_step * step,
        "wall_time": time.perf_counter() - started,
    }
    rows = [observation_row(**point, metric="loss", split="train", value=train_loss, higher_is_better=False)]
    rows += [
        observation_row(
            **point,
            metric=name,
            split=split,
            value=float(value),
            higher_is_better=bool(run.task.metrics.get(name, False)),
        )
        for split, metrics in scored.items()
        for name, value in metrics.items()
    ]
    return rows


def checkpoint_bytes(run: _Run, state: _State, elapsed: float) -> bytes:
    """The run's checkpoint: modules, optimiser, schedule, RNG, step, the rows so far, wall time, FLOPs/step."""
    checkpoint: dict[str, Any] = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "step": state.step,
        "rows": state.rows,
        "elapsed": elapsed,
        "flops_per_step": state.flops_per_step,
        "window": state.window,
        "shared_steps": state.shared_steps,
        "pruned_at": state.pruned_at,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


Save = Callable[[_Run, _State, float], None]  # (run, state, elapsed seconds): write the checkpoint
Stop = Callable[[_Run, _State], bool]  # after an eval (its rows in state.rows): whether the run stops there


def _saver(folder: Folder, name: str | Callable[[int], str] = CHECKPOINT) -> Save:
    def save(run: _Run, state: _State, elapsed: float) -> None:
        target = name if isinstance(name, str) else name(state.step)
        folder.write(target, checkpoint_bytes(run, state, elapsed))  # whole: a kill leaves old or new, never half

    return save


def batch_at(config: StudyConfig, run: _Run, step: int, replica: Replica = Replica()):
    """This process's shard of the global batch of optimiser step `step`, on the run's device."""
    indices = replica.shard(sample_indices(step, config.batch_size, run.data.dataset_size, run.spec.seed))
    return run.task.batch(run.data.train, indices, run.device)


def train_steps(
    config: StudyConfig,
    run: _Run,
    state: _State,
    save: Save,
    report: Report | None = None,
    replica: Replica = Replica(),
    keep: Save | None = None,
    stop: Stop | None = None,
) -> None:
    """Optimiser steps to the budget; every `eval_every` steps and at the last, evaluate and checkpoint; at each
    of a trunk's branch points, `keep` its state for the branch. When `stop` says so after an eval, the run ends
    there (`state.pruned_at`), checkpointed, and a resume trains no further.

    Data-parallel: every process calls this with its `replica`; the chief alone evaluates and reports, and
    each calls `save` at the same steps (the chief writes the checkpoint).
    """
    spec, model, device = run.spec, run.model, run.device
    if state.flops_per_step is None:  # of the global batch: the shard's count times the processes
        state.flops_per_step = measure_step_flops(run.task, model, batch_at(config, run, 0, replica)) * replica.world
    window_sum, window_count = torch.tensor(state.window[0], device=device), state.window[1]
    state.window, last_loss = (0.0, 0), float("nan")
    started = time.perf_counter() - state.elapsed
    amp = autocast(config, device)
    model.train()
    while state.step < run.total and state.pruned_at is None:
        with amp:
            loss = run.task.loss(run.forward, batch_at(config, run, state.step, replica))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optimizer.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        state.step += 1
        window_sum += loss.detach().float()
        window_count += 1
        evaluating = state.step % config.eval_every == 0 or state.step == run.total
        if report is not None:
            if evaluating or state.step % PROGRESS_EVERY == 0:  # .item() waits for the device: not every step
                last_loss = loss.item()
            report(Progress(spec.run_id, state.step, run.total, last_loss))
        if evaluating:
            train_loss = replica.mean(window_sum).item() / window_count
            if replica.chief:
                state.rows += _evaluate(config, run, state, train_loss, started)
            window_sum.zero_()
            window_count = 0
        if keep is not None and state.step in run.branch_points:  # before the checkpoint: a resume never skips it
            state.window = (replica.mean(window_sum).item(), window_count)  # the global batch's, on every replica
            keep(run, state, time.perf_counter() - started)
            state.window = (0.0, 0)
        if evaluating:
            if stop is not None and stop(run, state):
                state.pruned_at = state.step
            save(run, state, time.perf_counter() - started)


def _halving_stop(config: StudyConfig, run: _Run, run_dir: Path) -> tuple[Stop, Callable[[_State], None]] | None:
    """A halving search's stop hook (its trial reports each eval) and what closes the trial; None without one."""
    if config.search is None or config.search.method != "halving":
        return None
    from scalinglab.study.pruning import open_trial, search_metric

    halving = open_trial(config, run.spec, Path(run_dir).parent.parent)
    name, _ = search_metric(config)

    def value(state: _State) -> float:
        rows = [r for r in state.rows if r["steps"] == state.step and r["metric"] == name and r["split"] == "eval"]
        return rows[-1]["value"] if rows else float("nan")

    def stop(run: _Run, state: _State) -> bool:
        return halving.report(value(state), state.step, run.total)

    return stop, lambda state: halving.finish(value(state))


def train_run(config: StudyConfig, spec: RunSpec, run_dir: Path, report: Report | None = None) -> RunResult:
    """Train one (model scale, data scale, seed) cell to its budget, resuming from its checkpoint.

    Holds the run's lock throughout (RunLocked when another live process trains this run), and reports
    Started (once it holds the lock), Progress and Notice events to `report`.
    """
    config = run_config(config, spec)  # a search's trial trains with its own hyperparameters
    with run_lock(run_dir):
        if report is not None:
            report(Started(spec.run_id))
        folder = run_folder(config.storage, run_dir)
        run, state = _start(config, spec, folder, report, run_dir)
        halving = _halving_stop(config, run, run_dir)
        stop = None if halving is None else halving[0]
        train_steps(config, run, state, _saver(folder), report, keep=_saver(folder, branch_file), stop=stop)
        if halving is not None:
            halving[1](state)
    return RunResult(
        spec.run_id,
        state.rows,
        run.n_params,
        run.n_nonembed,
        run.dataset_size,
        state.flops_per_step,
        state.resumed_from,
        None if run.branch is None or not state.shared_steps else run.branch[0].run_id,
        state.shared_steps,
        state.pruned_at,
    )
