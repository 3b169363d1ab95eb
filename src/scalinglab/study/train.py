"""The training loop, one for every task: train a run, evaluate every K steps, checkpoint, resume.

Observation rows travel inside the checkpoint, so a run resumed from its last checkpoint returns all
of its rows exactly once; the driver writes them when the run is done.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.observations import observation_row
from scalinglab.study.config import StudyConfig
from scalinglab.study.lock import run_lock
from scalinglab.study.records import Event, Notice, Progress, RunResult, RunSpec, Started
from scalinglab.study.schedule import lr_factor
from scalinglab.tasks import build_task
from scalinglab.tasks.base import Task, TaskData

__all__ = ["RunResult", "RunSpec", "measure_step_flops", "resolve_device", "sample_indices", "train_run"]

PROGRESS_EVERY = 10  # steps between progress reports of the training loss
CHECKPOINT = "checkpoint.pt"
Report = Callable[[Event], None]  # receives Started, Progress and Notice events


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


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


def _optimizer(config: StudyConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay)


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


@dataclass
class _State:
    """What a checkpoint carries besides the modules' state."""

    step: int = 0
    rows: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    flops_per_step: float | None = None
    resumed_from: int = 0


def _build(config: StudyConfig, spec: RunSpec, device: torch.device) -> _Run:
    task = build_task(config.task, config.task_options)
    torch.manual_seed(spec.seed)
    data = task.build_data(spec.data_scale, spec.seed)
    model = task.build_model(spec.model_scale, config.scale_by).to(device)
    optimizer = _optimizer(config, model)
    total = config.budget.total_steps(data.dataset_size, config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config.schedule))
    n_params = sum(p.numel() for p in model.parameters())
    n_nonembed = n_params - task.embedding_parameters(model)
    return _Run(spec, device, task, data, model, optimizer, scheduler, total, n_params, n_nonembed)


class _Unusable(Exception):
    """A checkpoint that cannot resume this run; the message says why in a few words."""


def _restore(run: _Run, path: Path) -> _State:
    """Load a checkpoint into `run`; _Unusable when it cannot be read or does not fit this run."""
    try:
        saved = torch.load(path, map_location=run.device, weights_only=True)
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
        return _State(step, list(saved["rows"]), float(saved["elapsed"]), saved["flops_per_step"], step)
    except Exception as exc:
        raise _Unusable(f"it does not fit this run ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    first = first if len(first) <= 100 else first[:97] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _start(config: StudyConfig, spec: RunSpec, run_dir: Path, report: Report | None) -> tuple[_Run, _State]:
    """The run, from its checkpoint when there is one that loads; from scratch otherwise.

    A checkpoint that cannot be loaded (corrupt, or from another model) is set aside, not deleted, and the
    run starts over from a fresh build: a user rerunning the study gets a complete run, not a failure.
    """
    device = resolve_device(config.device)
    run = _build(config, spec, device)
    path = run_dir / CHECKPOINT
    if not path.exists():
        return run, _State()
    try:
        return run, _restore(run, path)
    except _Unusable as exc:
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        if report is not None:
            what = f"checkpoint {path} could not be loaded: {exc}; moved to {aside.name}, training from step 0"
            report(Notice(spec.run_id, what))
        return _build(config, spec, device), _State()  # the failed restore may have changed the model


def _evaluate(config: StudyConfig, run: _Run, state: _State, train_loss: float, started: float) -> list[dict]:
    """The rows of one eval: the mean training loss since the last eval, and each eval metric."""
    autocast = torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda")
    run.model.eval()
    with autocast:
        metrics = run.task.evaluate(run.model, run.data.eval, run.device)
    run.model.train()
    step = state.step
    point = {
        "run_id": run.spec.run_id,
        "n_params": run.n_params,
        "n_params_nonembed": run.n_nonembed,
        "dataset_size": run.data.dataset_size,
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
            split="eval",
            value=float(value),
            higher_is_better=bool(run.task.metrics.get(name, False)),
        )
        for name, value in metrics.items()
    ]
    return rows


def _save(path: Path, run: _Run, state: _State, elapsed: float) -> None:
    checkpoint: dict[str, Any] = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "step": state.step,
        "rows": state.rows,
        "elapsed": elapsed,
        "flops_per_step": state.flops_per_step,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)  # atomic: a kill leaves the previous checkpoint or the new one, never half of one


def _train(config: StudyConfig, run: _Run, state: _State, ckpt_path: Path, report: Report | None) -> None:
    """Optimiser steps to the budget; every `eval_every` steps and at the last, evaluate and checkpoint."""
    spec, model, device = run.spec, run.model, run.device

    def batch_at(s: int):
        indices = sample_indices(s, config.batch_size, run.data.dataset_size, spec.seed)
        return run.task.batch(run.data.train, indices, device)

    if state.flops_per_step is None:
        state.flops_per_step = measure_step_flops(run.task, model, batch_at(0))
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    window_sum, window_count, last_loss = torch.zeros((), device=device), 0, float("nan")
    started = time.perf_counter() - state.elapsed
    model.train()
    while state.step < run.total:
        with autocast:
            loss = run.task.loss(model, batch_at(state.step))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
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
            state.rows += _evaluate(config, run, state, window_sum.item() / window_count, started)
            window_sum.zero_()
            window_count = 0
            _save(ckpt_path, run, state, time.perf_counter() - started)


def train_run(config: StudyConfig, spec: RunSpec, run_dir: Path, report: Report | None = None) -> RunResult:
    """Train one (model scale, data scale, seed) cell to its budget, resuming from its checkpoint.

    Holds the run's lock throughout (RunLocked when another live process trains this run), and reports
    Started (once it holds the lock), Progress and Notice events to `report`.
    """
    with run_lock(run_dir):
        if report is not None:
            report(Started(spec.run_id))
        run, state = _start(config, spec, run_dir, report)
        _train(config, run, state, run_dir / CHECKPOINT, report)
    return RunResult(
        spec.run_id,
        state.rows,
        run.n_params,
        run.n_nonembed,
        run.data.dataset_size,
        state.flops_per_step,
        state.resumed_from,
    )
