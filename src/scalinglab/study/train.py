"""The training loop, one for every task: train a run, evaluate every K steps, checkpoint, resume.

Observation rows travel inside the checkpoint, so a run resumed from its last checkpoint returns all
of its rows exactly once; the driver writes them when the run is done.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.study.config import StudyConfig
from scalinglab.study.schedule import lr_factor
from scalinglab.tasks import build_task
from scalinglab.tasks.base import Task

PROGRESS_EVERY = 10  # steps between progress reports of the training loss
ProgressFn = Callable[[str, int, int, float], None]  # run_id, step, total steps, train loss


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    model_scale: float
    data_scale: float
    seed: int


@dataclass
class RunResult:
    run_id: str
    rows: list[dict]
    n_params: int
    n_params_nonembed: int
    dataset_size: int
    flops_per_step: float
    resumed_from_step: int


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


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill leaves the previous checkpoint or the new one, never half of one


def train_run(config: StudyConfig, spec: RunSpec, run_dir: Path, progress: ProgressFn | None = None) -> RunResult:
    """Train one (model scale, data scale, seed) cell to its budget, resuming from its checkpoint."""
    device = resolve_device(config.device)
    task = build_task(config.task, config.task_options)
    torch.manual_seed(spec.seed)
    data = task.build_data(spec.data_scale, spec.seed)
    model = task.build_model(spec.model_scale, config.scale_by).to(device)
    optimizer = _optimizer(config, model)
    total = config.budget.total_steps(data.dataset_size, config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config.schedule))
    n_params = sum(p.numel() for p in model.parameters())
    n_nonembed = n_params - task.embedding_parameters(model)

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    step, rows, elapsed, flops_per_step, resumed_from = 0, [], 0.0, None, 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, rows, elapsed = state["step"], state["rows"], state["elapsed"]
        flops_per_step, resumed_from = state["flops_per_step"], state["step"]

    def batch_at(s: int):
        return task.batch(data.train, sample_indices(s, config.batch_size, data.dataset_size, spec.seed), device)

    if flops_per_step is None:
        flops_per_step = measure_step_flops(task, model, batch_at(0))
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    base = {
        "run_id": spec.run_id,
        "n_params": n_params,
        "n_params_nonembed": n_nonembed,
        "dataset_size": data.dataset_size,
        "model_scale": spec.model_scale,
        "data_scale": spec.data_scale,
        "seed": spec.seed,
    }
    window_sum, window_count, last_loss = torch.zeros((), device=device), 0, float("nan")
    started = time.perf_counter() - elapsed
    model.train()
    while step < total:
        with autocast:
            loss = task.loss(model, batch_at(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        window_sum += loss.detach().float()
        window_count += 1
        evaluating = step % config.eval_every == 0 or step == total
        if progress is not None:
            if evaluating or step % PROGRESS_EVERY == 0:  # .item() waits for the device: not every step
                last_loss = loss.item()
            progress(spec.run_id, step, total, last_loss)
        if evaluating:
            model.eval()
            with autocast:
                metrics = task.evaluate(model, data.eval, device)
            model.train()
            point = {
                **base,
                "samples_seen": step * config.batch_size,
                "steps": step,
                "flops": flops_per_step * step,
                "wall_time": time.perf_counter() - started,
            }
            rows.append(
                {
                    **point,
                    "metric": "loss",
                    "split": "train",
                    "value": window_sum.item() / window_count,
                    "higher_is_better": False,
                }
            )
            rows += [
                {
                    **point,
                    "metric": name,
                    "split": "eval",
                    "value": float(value),
                    "higher_is_better": bool(task.metrics.get(name, False)),
                }
                for name, value in metrics.items()
            ]
            window_sum.zero_()
            window_count = 0
            _save(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "step": step,
                    "rows": rows,
                    "elapsed": time.perf_counter() - started,
                    "flops_per_step": flops_per_step,
                },
            )
    return RunResult(spec.run_id, rows, n_params, n_nonembed, data.dataset_size, flops_per_step, resumed_from)


def result_to_dict(result: RunResult) -> dict:
    return asdict(result)
