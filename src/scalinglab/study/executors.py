"""Where runs train: in this process, in K local worker processes, or as Ray tasks.

Every executor reports the same events to the driver's `emit`, and the driver alone writes the store:
("start", run_id), ("progress", run_id, step, total, loss), ("done", RunResult), ("failed", run_id, error).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from scalinglab.study.config import StudyConfig
from scalinglab.study.train import RunSpec, train_run

Event = tuple
Emit = Callable[[Event], None]


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_sequential(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit) -> None:
    for spec in specs:
        emit(("start", spec.run_id))
        try:
            result = train_run(config, spec, runs_dir / spec.run_id, lambda *p: emit(("progress", *p)))
        except Exception as exc:  # a run that raises is marked failed; the sweep goes on
            emit(("failed", spec.run_id, _error_text(exc)))
            continue
        emit(("done", result))


def _worker(config_json: dict, spec: RunSpec, run_dir: str, progress_queue, threads: int):
    torch.set_num_threads(threads)
    config = StudyConfig.model_validate(config_json)
    last = [0.0]

    def report(run_id: str, step: int, total: int, loss: float) -> None:
        import time

        now = time.monotonic()
        if now - last[0] > 0.2 or step == total:
            last[0] = now
            progress_queue.put(("progress", run_id, step, total, loss))

    try:
        return ("done", train_run(config, spec, Path(run_dir), report))
    except Exception as exc:
        return ("failed", spec.run_id, _error_text(exc))


def run_local_pool(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit, workers: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        progress_queue = manager.Queue()
        config_json = config.model_dump(mode="json")
        pending = {}
        for spec in specs:
            future = pool.submit(_worker, config_json, spec, str(runs_dir / spec.run_id), progress_queue, threads)
            pending[future] = spec
        started: set[str] = set()
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while True:
                try:
                    event = progress_queue.get_nowait()
                except queue_module.Empty:
                    break
                if event[1] not in started:
                    started.add(event[1])
                    emit(("start", event[1]))
                emit(event)
            for future in done:
                spec = pending.pop(future)
                if spec.run_id not in started:
                    emit(("start", spec.run_id))
                try:
                    emit(future.result())
                except Exception as exc:  # the worker process itself died
                    emit(("failed", spec.run_id, _error_text(exc)))


def run_ray(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit, address: str | None) -> None:
    import ray

    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        gpus = 1 if config.device == "cuda" else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=3)(_ray_task)
        config_json = config.model_dump(mode="json")
        refs = {}
        for spec in specs:
            refs[remote.remote(config_json, spec, str(runs_dir / spec.run_id))] = spec
            emit(("start", spec.run_id))
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            spec = refs.pop(ready[0])
            try:
                emit(ray.get(ready[0]))
            except Exception as exc:  # retries exhausted: the worker kept dying
                emit(("failed", spec.run_id, _error_text(exc)))
    finally:
        if address is None:
            ray.shutdown()


def _ray_task(config_json: dict, spec: RunSpec, run_dir: str):
    config = StudyConfig.model_validate(config_json)
    try:
        return ("done", train_run(config, spec, Path(run_dir)))
    except Exception as exc:
        return ("failed", spec.run_id, _error_text(exc))
