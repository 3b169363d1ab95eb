"""Data-parallel runs on Ray Train: one run trained by `resources.workers_per_run` processes (DDP).

Each run is a `ray.train.torch.TorchTrainer` (gloo on CPU, NCCL on GPU). Every worker builds the run exactly
as a single process would (same seed, model, optimiser and schedule), takes an equal contiguous shard of the
same global batch of each step (`train.Replica`), and DDP averages the gradients, so the step is that of the
global batch. The chief (rank 0) evaluates, writes the checkpoint through `ray.train.report`, and returns the
observation rows; FLOPs are those of the global batch. Checkpoints live in Ray Train's storage,
`<storage>/runs/<run_id>/checkpoint_*/checkpoint.pt` (`storage:` in the config, default the study directory),
so a worker that dies is restarted from the last checkpoint (`FailureConfig(max_failures)`), and a study
resumed by a new driver continues every unfinished run from there.

The driver holds each run's lock while its trainer runs and alone writes the store.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalinglab.study.config import StudyConfig
from scalinglab.study.lock import RunLocked, run_lock
from scalinglab.study.records import Done, Event, Failed, RunResult, RunSpec, Skipped, Started
from scalinglab.study.storage import run_folder

Emit = Callable[[Event], None]
CHECKPOINT = "checkpoint.pt"  # the same file a single-process run writes, inside each Ray Train checkpoint


def _worker_loop(payload: dict[str, Any]) -> None:
    """What each Ray Train worker runs: its replica of the run, from the last checkpoint when there is one."""
    import ray.train
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from scalinglab.study import train

    config = StudyConfig.model_validate(payload["config"])
    spec = RunSpec(**payload["spec"])
    context = ray.train.get_context()
    replica = train.Replica(context.get_world_rank(), context.get_world_size())
    torch.set_num_threads(max(1, int(config.resources.cpus_per_worker)))
    if config.resources.gpus_per_worker > 0:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    run_dir = Path(payload["run_dir"])
    run = train.build_run(config, spec, device)
    state = train.RunState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = train.restore_run(run, (Path(folder) / CHECKPOINT).read_bytes())
    elif run.branch is not None:  # a cooldown branch: every replica starts from its trunk's saved state
        run, state = train.branch_start(config, run, run_dir.parent)
    if state.flops_per_step is None:  # before DDP wraps the model: the count runs a plain backward
        shard = train.batch_at(config, run, 0, replica)
        state.flops_per_step = train.measure_step_flops(run.task, run.model, shard) * replica.world
    ids = [device.index] if device.type == "cuda" else None
    run.forward = DistributedDataParallel(run.forward, device_ids=ids)

    saved = [False]

    def save(run: train._Run, state: train.RunState, elapsed: float) -> None:
        saved[0] = True
        metrics: dict[str, Any] = {"step": state.step}
        if not replica.chief:
            ray.train.report(metrics, checkpoint=None)  # every worker reports at the same steps
            return
        if state.step == run.total:  # the result travels with the last checkpoint (Result.metrics)
            metrics["result"] = _result(spec, run, state)
        with tempfile.TemporaryDirectory(prefix="scalinglab-ckpt-") as folder:
            (Path(folder) / CHECKPOINT).write_bytes(train.checkpoint_bytes(run, state, elapsed))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))  # uploaded before return

    keep = _keeper(config, run_dir, replica) if run.branch_points else None
    train.train_steps(config, run, state, save, None, replica, keep=keep)
    if not saved[0]:  # restored from the final checkpoint (a driver lost after the run ended): report it again
        save(run, state, state.elapsed)


def _keeper(config: StudyConfig, run_dir: Path, replica: Any) -> Callable:
    """A trunk's `keep`: at each branch point the chief writes the state its branches start from (every replica
    holds the same model and optimiser; the chief's RNG state is the one a single-process trunk would save)."""
    from scalinglab.study import train
    from scalinglab.study.branches import branch_file

    folder = run_folder(config.storage, run_dir)

    def keep(run: Any, state: Any, elapsed: float) -> None:
        if replica.chief:
            folder.write(branch_file(state.step), train.checkpoint_bytes(run, state, elapsed))

    return keep


def _result(spec: RunSpec, run, state) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "rows": state.rows,
        "n_params": run.n_params,
        "n_params_nonembed": run.n_nonembed,
        "dataset_size": run.dataset_size,
        "flops_per_step": state.flops_per_step,
        "resumed_from_step": state.resumed_from,
        "parent": None if run.branch is None or not state.shared_steps else run.branch[0].run_id,
        "shared_steps": state.shared_steps,
    }


def trainer(config: StudyConfig, spec: RunSpec, run_dir: Path):
    """The run's TorchTrainer: its workers, its storage (the run's folder) and its failure handling."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from scalinglab.study import train

    config = train.run_config(config, spec)  # a trial's own hyperparameters; a batch size from its law
    res = config.resources
    folder = run_folder(config.storage, run_dir)
    parent, name = folder.path.rsplit("/", 1)
    per_worker = {"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if res.gpus_per_worker else {})}
    return TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config.model_dump(mode="json"), "spec": vars(spec), "run_dir": str(run_dir)},
        scaling_config=ScalingConfig(
            num_workers=res.workers_per_run, use_gpu=res.gpus_per_worker > 0, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=name,
            storage_path=parent or "/",
            storage_filesystem=folder.fs,
            failure_config=FailureConfig(max_failures=res.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )


def fit_run(config_json: dict, spec: RunSpec, run_dir: str) -> RunResult:
    """Train one run data-parallel to its budget (in a Ray task: the trainer's controller is an actor)."""
    config = StudyConfig.model_validate(config_json)
    result = trainer(config, spec, Path(run_dir)).fit()  # raises once the workers fail past max_failures
    return RunResult(**result.metrics["result"])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_ray_train(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit) -> None:
    """Every run as a TorchTrainer, as many at once as the cluster has room for; Ray is already connected.

    The driver holds each run's lock until its result is in: a second driver on the same study skips it.
    """
    import ray

    launch = ray.remote(num_cpus=0, max_retries=3)(fit_run)  # the trainer's own workers hold the resources
    config_json = config.model_dump(mode="json")
    refs: dict[Any, tuple[RunSpec, contextlib.ExitStack]] = {}
    try:
        for spec in specs:
            held = contextlib.ExitStack()
            try:
                held.enter_context(run_lock(runs_dir / spec.run_id))
            except RunLocked as exc:
                held.close()
                emit(Skipped(spec.run_id, str(exc)))
                continue
            refs[launch.remote(config_json, spec, str(runs_dir / spec.run_id))] = (spec, held)
            emit(Started(spec.run_id))
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            spec, held = refs.pop(ready[0])
            try:
                event: Event = Done(ray.get(ready[0]))
            except Exception as exc:  # the workers kept failing, or the run raised
                cause = getattr(exc, "cause", None) or exc
                event = Failed(spec.run_id, _one_line(cause))
            finally:
                held.close()
            emit(event)
    finally:
        for _, held in refs.values():
            held.close()
