"""Where runs train: in this process, in K local worker processes, or as Ray tasks (each run data-parallel
on Ray Train when `resources.workers_per_run` > 1: `scalinglab.study.distributed`).

Every executor reports the same typed events (`records.Event`) to the driver's `emit`, and the driver
alone writes the store. Torch is imported only where a run trains, never by the driver's own import.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.study.config import StudyConfig
from scalinglab.study.lock import RunLocked
from scalinglab.study.records import Done, Event, Failed, Notice, Progress, RunSpec, Skipped, Started

Emit = Callable[[Event], None]
RAY_TIMEOUT = 30.0  # seconds to reach a Ray cluster before giving up with one line
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PROGRESS_INTERVAL = 0.2  # seconds between a worker's progress messages


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    text = " ".join(str(exc).split())  # one line: a run's error is printed and shown in a table
    return f"{type(exc).__name__}: {text}{where}"


def _train(config: StudyConfig, spec: RunSpec, run_dir: Path, report: Emit) -> Event:
    """Train one run and say how it ended: Done, Failed (it raised) or Skipped (another process has it)."""
    from scalinglab.study.train import train_run

    try:
        return Done(train_run(config, spec, run_dir, report))
    except RunLocked as exc:
        return Skipped(spec.run_id, str(exc))
    except Exception as exc:  # a run that raises is marked failed; the sweep goes on
        return Failed(spec.run_id, _error_text(exc))


def _single_process(config: StudyConfig) -> None:
    """Data-parallel runs train on Ray Train: refuse them, in one line, on the local executors."""
    workers = config.resources.workers_per_run
    if workers > 1:
        raise UserError(f"resources.workers_per_run is {workers}: data-parallel runs need --executor ray")


def run_sequential(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit) -> None:
    _single_process(config)
    for spec in specs:
        emit(_train(config, spec, runs_dir / spec.run_id, emit))


# --- local worker processes -------------------------------------------------------------------------

_worker_queue = None  # set in each worker by _init_worker
_driver_pid = 0


def _die_with_driver(driver_pid: int) -> None:
    """Make the kernel SIGKILL this worker when the driver dies (Linux), and exit now if it already has.

    A worker that outlived its driver would train on with nobody to receive its result, then block.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the getppid check in each progress report still ends the worker
    if os.getppid() != driver_pid:  # the driver died before prctl took effect
        os._exit(1)


def _init_worker(progress_queue, driver_pid: int, threads: int) -> None:
    global _worker_queue, _driver_pid
    _die_with_driver(driver_pid)
    _worker_queue, _driver_pid = progress_queue, driver_pid
    import torch

    torch.set_num_threads(threads)


def _pool_run(config_json: dict, spec: RunSpec, run_dir: str) -> Event:
    config = StudyConfig.model_validate(config_json)
    last = [0.0]

    def report(event: Event) -> None:
        if os.getppid() != _driver_pid:  # the driver is gone (where PR_SET_PDEATHSIG is not available)
            os._exit(1)
        if isinstance(event, Progress):
            now = time.monotonic()
            if now - last[0] < PROGRESS_INTERVAL and event.step != event.total:
                return
            last[0] = now
        _worker_queue.put(event)

    return _train(config, spec, Path(run_dir), report)


def run_local_pool(config: StudyConfig, specs: list[RunSpec], runs_dir: Path, emit: Emit, workers: int) -> None:
    """K spawned worker processes; each dies with the driver, events come back over one queue."""
    _single_process(config)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    # A SimpleQueue writes synchronously: a worker's events are in the pipe before its result comes back.
    progress_queue = ctx.SimpleQueue()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(progress_queue, os.getpid(), threads)
    )
    with pool:
        config_json = config.model_dump(mode="json")
        pending = {pool.submit(_pool_run, config_json, spec, str(runs_dir / spec.run_id)): spec for spec in specs}
        finished: set[str] = set()

        def drain() -> None:
            while not progress_queue.empty():
                event = progress_queue.get()
                if isinstance(event, Notice) or event.run_id not in finished:  # late progress of a finished run
                    emit(event)

        while pending:
            done, _ = wait(pending, timeout=PROGRESS_INTERVAL, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                spec = pending.pop(future)
                finished.add(spec.run_id)
                try:
                    emit(future.result())
                except Exception as exc:  # the worker process itself died
                    emit(Failed(spec.run_id, _error_text(exc)))
    progress_queue.close()


# --- Ray ----------------------------------------------------------------------------------------------

_RAY_ADDRESS = re.compile(r"(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")


def resolve_ray_address(address: str | None) -> str | None:
    """The cluster to connect to (--address, else RAY_ADDRESS, else None: start a local Ray), checked."""
    source = "--address"
    if address is None:
        address, source = os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address is None or address in ("auto", "local"):
        return address
    match = _RAY_ADDRESS.fullmatch(address.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise UserError(f"{source}: '{address}' is not a Ray address; use HOST:PORT, ray://HOST:PORT or auto")
    return address.strip()


def _probe(address: str, timeout: float) -> None:
    """Fail fast, in one line, when nothing listens at a HOST:PORT address."""
    match = _RAY_ADDRESS.fullmatch(address)
    if match is None:
        return
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        raise UserError(f"Ray at {address}: no answer within {timeout:g} s (--ray-timeout)") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"Ray at {address} cannot be reached ({reason.lower()}); is the cluster up?") from None


def connect_ray(address: str | None, timeout: float = RAY_TIMEOUT) -> None:
    """ray.init, bounded by `timeout` seconds when joining a cluster (Ray itself would retry for minutes)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    options = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False}
    if address is None or address == "local":  # a new local instance, never one already running on the machine
        ray.init(address="local", **options)
        return
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # its C++ client logs every failed retry
    _probe(address, timeout)
    outcome: dict[str, BaseException] = {}

    def init() -> None:
        try:
            ray.init(address=address, logging_level=logging.ERROR, **options)
        except BaseException as exc:  # handed to the calling thread
            outcome["error"] = exc

    # A daemon thread: a cluster that never answers cannot keep the process alive after the error.
    thread = threading.Thread(target=init, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise UserError(f"Ray at {address}: no answer within {timeout:g} s (--ray-timeout)")
    if "error" in outcome:
        exc = outcome["error"]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"Ray at {address}: cannot connect ({first})")


def run_ray(
    config: StudyConfig,
    specs: list[RunSpec],
    runs_dir: Path,
    emit: Emit,
    address: str | None,
    timeout: float = RAY_TIMEOUT,
) -> None:
    import ray

    connect_ray(address, timeout)  # a no-op when the driver connected before it started its display
    try:
        if config.resources.workers_per_run > 1:
            from scalinglab.study.distributed import run_ray_train

            run_ray_train(config, specs, runs_dir, emit)
            return
        res = config.resources
        gpus = res.gpus_per_worker or (1 if config.device == "cuda" else 0)
        remote = ray.remote(num_cpus=res.cpus_per_worker, num_gpus=gpus, max_retries=3)(_ray_task)
        config_json = config.model_dump(mode="json")
        refs = {}
        for spec in specs:
            refs[remote.remote(config_json, spec, str(runs_dir / spec.run_id))] = spec
            emit(Started(spec.run_id))
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            spec = refs.pop(ready[0])
            try:
                events = ray.get(ready[0])
            except Exception as exc:  # retries exhausted: the worker kept dying
                events = [Failed(spec.run_id, _error_text(exc))]
            for event in events:
                emit(event)
    finally:
        if address is None or address == "local":
            ray.shutdown()


def _ray_task(config_json: dict, spec: RunSpec, run_dir: str) -> list[Event]:
    """A run as a Ray task: its notices and its outcome come back together (there is no live channel)."""
    config = StudyConfig.model_validate(config_json)
    notices: list[Event] = []

    def report(event: Event) -> None:
        if isinstance(event, Notice):  # Started is emitted at submit; progress is not sent back
            notices.append(event)

    outcome = _train(config, spec, Path(run_dir), report)
    return [*notices, outcome]
