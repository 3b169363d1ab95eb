"""Runs beyond one process: data-parallel runs on Ray Train, checkpoints on shared storage, faults, precision.

The Ray tests start one local cluster for the module (`ray start --head` on a free port and a temporary
folder, joined by address) and stop exactly that cluster afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from scalinglab.errors import UserError
from scalinglab.study.config import parse_config
from scalinglab.study.records import RunSpec
from scalinglab.study.runner import execute
from scalinglab.study.storage import STORAGE_ENV, Folder
from scalinglab.study.store import Store
from scalinglab.study.train import autocast, build_run, train_run, uses_bf16

pytestmark = pytest.mark.ray  # the module starts a Ray cluster: under pytest -n its tests share one worker

BASE = {
    "name": "dp",
    "task": "toy",
    "task_options": {"base_samples": 128, "eval_samples": 128},
    "model_scales": [1],
    "data_scales": [1],
    "budget": {"steps": 24},
    "batch_size": 32,
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"kind": "cosine", "warmup_steps": 2},
    "eval_every": 8,
}
SPEC = RunSpec("m1-d1-s0", 1.0, 1.0, 0)
# Data-parallel and single-process runs differ only in the order of floating-point sums (the gradient is the
# mean of two half-batch means, all-reduced); over these runs that moves a recorded value by < 1e-5 relative.
RTOL = 1e-4


def config(**overrides):
    return parse_config({**BASE, **overrides})


# --- the config keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"resources": {"workers_per_run": 3}}, "batch_size 32 must be a multiple of resources.workers_per_run (3)"),
        ({"resources": {"workers_per_run": 0}}, "key 'resources.workers_per_run'"),
        ({"resources": {"gpus_per_worker": 1}}, "resources.gpus_per_worker > 0 needs device 'cuda' or 'auto'"),
        ({"resources": {"nodes": 2}}, "key 'resources.nodes': unknown key"),
        ({"precision": "fp16"}, "key 'precision': Input should be 'auto', 'fp32' or 'bf16'"),
        ({"compile": "sometimes"}, "key 'compile'"),
        ({"storage": ""}, "key 'storage'"),
    ],
)
def test_bad_resources_precision_and_storage_keys_are_one_line(overrides, needle):
    with pytest.raises(UserError, match="^config: ") as info:
        config(**overrides)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_new_keys_at_their_defaults_keep_a_studys_digest():
    # the digest a study created before these keys existed holds: the config without them
    import hashlib
    import json

    old = config().model_dump(mode="json")
    for key in ("resources", "storage", "precision", "compile", "logging", "branches", "search"):
        old.pop(key, None)
    old["schedule"].pop("decay_shape")
    old["optimizer"].pop("lr_law")
    old.pop("batch_size_law")
    assert config().digest() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert config(precision="bf16").digest() != config().digest()
    assert config(resources={"workers_per_run": 2}).digest() != config().digest()


def test_the_local_executors_refuse_a_data_parallel_study_in_one_line(tmp_path):
    store = Store.create(tmp_path / "s", config(resources={"workers_per_run": 2}))
    with pytest.raises(UserError, match="resources.workers_per_run is 2: data-parallel runs need --executor ray"):
        execute(store)


def test_precision_and_compile():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16(config(), cuda) and not uses_bf16(config(), cpu)
    assert uses_bf16(config(precision="bf16"), cpu) and not uses_bf16(config(precision="fp32"), cuda)
    assert autocast(config(precision="bf16"), cpu).fast_dtype == torch.bfloat16
    run = build_run(config(compile=True), SPEC, cpu)
    assert run.forward is not run.model and isinstance(run.forward, torch._dynamo.eval_frame.OptimizedModule)
    assert run.forward._orig_mod is run.model  # one set of parameters: the checkpoint holds the plain module
    assert build_run(config(), SPEC, cpu).forward is not None


@pytest.mark.slow
def test_bf16_autocast_trains_on_the_cpu_and_changes_the_numbers(tmp_path):
    fp32 = train_run(config(budget={"steps": 8}), SPEC, tmp_path / "a")
    bf16 = train_run(config(budget={"steps": 8}, precision="bf16"), SPEC, tmp_path / "b")
    first, second = (next(r["value"] for r in x.rows if r["split"] == "train") for x in (fp32, bf16))
    assert torch.isfinite(torch.tensor(second)) and first != second
    assert abs(first - second) < 0.05 * abs(first)  # bf16 keeps about 3 significant digits


# --- storage -----------------------------------------------------------------------------------------------


def _interrupt_at(step: int):
    class Stop(Exception):
        pass

    def report(event):
        if getattr(event, "step", 0) == step:
            raise Stop

    return Stop, report


@pytest.mark.slow
def test_checkpoints_go_to_the_storage_and_resume_reads_them_from_there(tmp_path):
    shared = tmp_path / "shared"  # a second path standing in for shared storage
    cfg = config(storage=str(shared))
    full = train_run(config(), SPEC, tmp_path / "alone" / "runs" / SPEC.run_id)
    run_dir = tmp_path / "study" / "runs" / SPEC.run_id
    stop, report = _interrupt_at(12)
    with pytest.raises(stop):
        train_run(cfg, SPEC, run_dir, report)
    assert (shared / "runs" / SPEC.run_id / "checkpoint.pt").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == ["lock"]  # the lock stays with the driver
    resumed = train_run(cfg, SPEC, run_dir)
    assert resumed.resumed_from_step == 8
    strip = [{k: v for k, v in row.items() if k != "wall_time"} for row in resumed.rows]
    assert strip == [{k: v for k, v in row.items() if k != "wall_time"} for row in full.rows]


@pytest.mark.slow
def test_storage_on_a_uri_that_fsspec_opens(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    uri = f"memory://bucket/{tmp_path.name}"  # fsspec's in-memory filesystem lives as long as this process
    first = train_run(config(storage=uri), SPEC, tmp_path / "runs" / SPEC.run_id)
    folder = Folder.at(uri).child("runs", SPEC.run_id)
    assert folder.exists("checkpoint.pt") and fsspec.filesystem("memory").exists(f"/bucket/{tmp_path.name}/runs")
    again = train_run(config(storage=uri), SPEC, tmp_path / "runs" / SPEC.run_id)  # finds the final checkpoint
    assert again.resumed_from_step == 24 and again.rows == first.rows


@pytest.mark.slow
def test_the_storage_override_and_an_unknown_scheme(tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    monkeypatch.setenv(STORAGE_ENV, str(moved))
    train_run(config(storage="nowhere://x"), SPEC, tmp_path / "runs" / SPEC.run_id)
    assert (moved / "runs" / SPEC.run_id / "checkpoint.pt").is_file()
    monkeypatch.delenv(STORAGE_ENV)
    with pytest.raises(UserError, match="^storage 'nowhere://x': cannot be opened"):
        train_run(config(storage="nowhere://x"), SPEC, tmp_path / "runs" / SPEC.run_id)


# --- a local Ray cluster -------------------------------------------------------------------------------------


@dataclass
class Cluster:
    address: str
    pgid: int  # every process of this cluster (head, raylet, workers) is in this process group


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop this cluster only (`ray stop` would stop every Ray on the machine): SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):  # its workers exit with the raylet
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the head process: a zombie would keep the group alive
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.train.torch")
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the cluster and this driver agree: no token on a private cluster
    port, temp = _free_port(), tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # a short path: Ray's sockets live there
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", f"--port={port}", f"--temp-dir={temp}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(0.3)
        yield Cluster(f"127.0.0.1:{port}", head.pid)
    finally:
        ray.shutdown()
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _train_workers(pgid: int) -> list[int]:
    """The pids of this cluster's Ray Train workers: their title names the actor class, their parent is the
    cluster's raylet (the workers start sessions of their own; the raylet stays in the cluster's group)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                continue
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if os.getpgid(parent) == pgid:
                pids.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(pids)


def _values(rows) -> dict:
    return {(r["steps"], r["metric"], r["split"]): r for r in rows}


@pytest.mark.slow
def test_a_data_parallel_run_survives_a_killed_worker_and_matches_one_process(cluster, tmp_path):
    shared = tmp_path / "shared"  # a second path standing in for shared storage
    steps = 240  # 5 evals, each a checkpoint through Ray Train's storage (seconds each): a window to kill in
    cfg = config(budget={"steps": steps}, eval_every=48, resources={"workers_per_run": 2}, storage=str(shared))
    store = Store.create(tmp_path / "study", cfg)
    run_store = shared / "runs" / SPEC.run_id
    killed: list[int] = []

    def kill_a_worker_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            registered = (run_store / "checkpoint_manager_snapshot.json").exists()  # a checkpoint is committed
            workers = _train_workers(cluster.pgid) if registered else []
            if workers:
                os.kill(workers[-1], signal.SIGKILL)
                killed.append(workers[-1])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_after_the_first_checkpoint, daemon=True)
    killer.start()
    assert execute(store, executor="ray", address=cluster.address) == {"done": 1}
    killer.join(timeout=1)
    assert killed, "no Ray Train worker was found to kill"
    run = store.runs().iloc[0]
    assert 48 <= run.resumed_from_step < steps  # the restarted workers continued from a checkpoint
    assert sorted(p.name for p in (tmp_path / "study" / "runs" / SPEC.run_id).iterdir()) == ["lock"]
    assert any(run_store.glob("checkpoint_*/checkpoint.pt"))  # Ray Train's checkpoints, on the storage

    # the same run in one process, the same global batch of 32: the same rows, within the float-sum tolerance
    alone = train_run(config(budget={"steps": steps}, eval_every=48), SPEC, tmp_path / "alone")
    assert run.flops_per_step == alone.flops_per_step and run.n_params == alone.n_params
    got, want = _values(store.observations().to_dict("records")), _values(alone.rows)
    assert got.keys() == want.keys()  # every eval recorded exactly once, through the restart
    for key, row in want.items():
        assert got[key]["samples_seen"] == row["samples_seen"] and got[key]["flops"] == row["flops"]
        assert got[key]["value"] == pytest.approx(row["value"], rel=RTOL), key


@pytest.mark.slow
def test_data_parallel_branches_start_from_their_trunk_and_match_one_process(cluster, tmp_path):
    branches = {  # one epoch of 256 and 1,024 samples in batches of 16: the branch leaves the trunk at step 12
        **BASE,
        "task_options": {"base_samples": 256, "eval_samples": 128},
        "model_scales": [1],
        "data_scales": [1, 4],
        "budget": {"epochs": 1},
        "batch_size": 16,
        "schedule": {"kind": "wsd", "warmup_steps": 2, "decay_fraction": 0.25},
        "eval_every": 4,
        "branches": True,
    }
    store = Store.create(tmp_path / "dp", parse_config({**branches, "resources": {"workers_per_run": 2}}))
    assert execute(store, executor="ray", address=cluster.address) == {"done": 2}
    runs = store.runs().set_index("run_id")
    assert (runs.loc["m1-d1-s0", "parent"], runs.loc["m1-d1-s0", "shared_steps"]) == ("m1-d4-s0", 12)
    alone = Store.create(tmp_path / "one", parse_config(branches))  # the same study in one process per run
    execute(alone)
    got, want = (
        s.observations().set_index(["run_id", "steps", "metric", "split"]).value.sort_index() for s in (store, alone)
    )
    assert got.index.equals(want.index)  # every eval recorded once, the branch's shared steps its own
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=RTOL)
