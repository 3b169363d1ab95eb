"""The study runner: config validation, the training loop, the store, resume after SIGKILL, executors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from scalinglab import ScalingLaw
from scalinglab.errors import UserError
from scalinglab.study.config import ScheduleConfig, load_config, parse_config
from scalinglab.study.records import Progress, RunSpec
from scalinglab.study.runner import execute, export
from scalinglab.study.schedule import learning_rates, lr_factor
from scalinglab.study.store import Store
from scalinglab.study.train import measure_step_flops, sample_indices, train_run
from scalinglab.tasks import build_task
from scalinglab.tasks.toy import ToyTask

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "t",
    "task": "toy",
    "task_options": {"base_samples": 128, "eval_samples": 128},
    "model_scales": ["1X", "4X"],
    "scale_by": "width",
    "data_scales": [1, 2],
    "budget": {"steps": 24},
    "batch_size": 32,
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"kind": "cosine", "warmup_steps": 2},
    "eval_every": 8,
}


def config(**overrides):
    return parse_config({**BASE, **overrides})


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"scale_by": "height"}, "key 'scale_by': Input should be 'width', 'depth' or 'both'"),
        ({"device": "tpu"}, "key 'device': Input should be 'cpu', 'cuda' or 'auto'"),
        ({"model_scales": ["2Y"]}, "key 'model_scales': '2Y' is not a multiplier"),
        ({"data_scales": [0.5, -1]}, "key 'data_scales'"),
        ({"budget": {"steps": 10, "epochs": 2}}, "key 'budget': give exactly one of 'steps' or 'epochs'"),
        ({"learning_rate": 0.1}, "key 'learning_rate': unknown key"),
        ({"task": "chess"}, "key 'task': unknown task 'chess'; choose one of: toy, behavior, perception"),
        ({"task_options": {"base_samples": 0}}, "key 'task_options.base_samples'"),
        ({"schedule": {"kind": "step"}}, "key 'schedule.kind': Input should be 'cosine', 'wsd' or 'constant'"),
    ],
)
def test_config_errors_name_the_key_and_allowed_values(overrides, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        config(**overrides)


def test_config_from_yaml(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert load_config(path).model_scales == [1.0, 4.0]
    path.write_text("task: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(path)
    path.write_text("!!python/object/apply:os.system ['true']")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(path)  # loaded safely: no object construction


def test_schedules():
    cosine = ScheduleConfig(kind="cosine", warmup_steps=10)
    assert lr_factor(0, 100, cosine) == pytest.approx(0.1)
    assert lr_factor(10, 100, cosine) == pytest.approx(1.0)
    assert lr_factor(55, 100, cosine) == pytest.approx(0.5)
    assert lr_factor(100, 100, cosine) == pytest.approx(0.0, abs=1e-12)
    wsd = ScheduleConfig(kind="wsd", decay_fraction=0.2)
    assert [lr_factor(s, 100, wsd) for s in (0, 79)] == [1.0, 1.0]
    assert lr_factor(99, 100, wsd) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(89, 100, wsd) == pytest.approx(0.5)
    # step 89 is 10 of the 20 decay steps in: half way; 1 - sqrt(1/2) and cos^2(pi/4) = 1/2 by hand
    sqrt = ScheduleConfig(kind="wsd", decay_fraction=0.2, decay_shape="sqrt", min_lr_ratio=0.1)
    assert lr_factor(89, 100, sqrt) == pytest.approx(0.1 + 0.9 * (1 - 0.5**0.5))
    assert lr_factor(89, 100, ScheduleConfig(kind="wsd", decay_shape="cosine")) == pytest.approx(0.5)
    assert lr_factor(99, 100, sqrt) == pytest.approx(0.1)
    # the rates the trainer's LambdaLR sets, step by step
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, 100, sqrt))
    seen = []
    for _ in range(100):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(seen, learning_rates(sqrt, 100, 0.3), rtol=1e-12)


def test_batches_are_epoch_permutations_and_reproducible():
    steps = [sample_indices(s, 10, 40, seed=3) for s in range(8)]
    epoch0, epoch1 = torch.cat(steps[:4]), torch.cat(steps[4:])
    assert sorted(epoch0.tolist()) == list(range(40)) == sorted(epoch1.tolist())
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(sample_indices(5, 10, 40, seed=3), steps[5])


def test_flop_counter_matches_the_matmul_count():
    task = ToyTask({})
    model = task.build_model(4, "width")
    batch = task.batch(task.build_data(1, 0).train, torch.arange(64), torch.device("cpu"))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    weights = sum(m.in_features * m.out_features for m in linears)
    # forward 2BW, weight gradients 2BW, input gradients 2BW except the first layer's (inputs need no grad)
    expected = 6 * 64 * weights - 2 * 64 * linears[0].in_features * linears[0].out_features
    assert measure_step_flops(task, model, batch) == expected


@pytest.mark.parametrize("scale_by", ["width", "depth", "both"])
def test_model_family_grows_with_scale(scale_by):
    task = ToyTask({})
    counts = [sum(p.numel() for p in task.build_model(s, scale_by).parameters()) for s in (1, 4, 16)]
    assert counts[0] < counts[1] < counts[2]
    assert 2 < counts[2] / counts[1] < 8  # about 4x per 4x of scale


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    cfg = config()
    spec = RunSpec("m4-d1-s0", 4.0, 1.0, 0)
    full = train_run(cfg, spec, tmp_path / "a")

    def stop_at_12(event):
        if isinstance(event, Progress) and event.step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, spec, tmp_path / "b", stop_at_12)
    resumed = train_run(cfg, spec, tmp_path / "b")
    assert resumed.resumed_from_step == 8  # the last checkpoint before the interruption
    strip = [{k: v for k, v in row.items() if k != "wall_time"} for row in resumed.rows]
    assert strip == [{k: v for k, v in row.items() if k != "wall_time"} for row in full.rows]
    evals = [r for r in full.rows if r["metric"] == "loss" and r["split"] == "eval"]
    assert [r["steps"] for r in evals] == [8, 16, 24]
    assert evals[-1]["flops"] == 24 * full.flops_per_step
    assert evals[-1]["samples_seen"] == 24 * 32


def test_sweep_export_and_fit(tmp_path):
    store = Store.create(tmp_path / "s", config())
    counts = execute(store)
    assert counts == {"done": 4}
    obs = store.observations()
    assert set(obs["metric"]) == {"loss", "mae", "r2"}
    assert not obs.duplicated(["run_id", "steps", "metric", "split"]).any()
    assert set(obs.loc[obs.metric == "r2", "higher_is_better"]) == {1}
    path = tmp_path / "obs.parquet"
    assert export(store, path) == len(obs)
    law = ScalingLaw(form="power", bootstrap=0).fit(pd.read_parquet(path), {"x": "flops"}, metric="loss", split="eval")
    assert np.isfinite(law.params_["alpha"])


def test_a_different_config_is_refused(tmp_path):
    Store.create(tmp_path / "s", config()).close()
    Store.create(tmp_path / "s", config()).close()  # the same config: fine, it resumes
    with pytest.raises(UserError, match="holds a different study"):
        Store.create(tmp_path / "s", config(batch_size=16))


class _Broken(ToyTask):
    name = "broken"

    def build_model(self, model_scale, scale_by):
        if model_scale > 2:
            raise ValueError("no model this big")
        return super().build_model(model_scale, scale_by)


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import scalinglab.tasks as tasks

    monkeypatch.setattr(tasks, "_registry", lambda: {"toy": ToyTask, "broken": _Broken})
    store = Store.create(tmp_path / "s", config(task="broken"))
    assert execute(store) == {"done": 2, "failed": 2}
    runs = store.runs().set_index("run_id")
    assert "ValueError: no model this big" in runs.loc["m4-d1-s0", "error"]
    assert runs.loc["m1-d2-s0", "status"] == "done"


@pytest.mark.slow
def test_worker_processes_give_the_same_observations(tmp_path):
    one = Store.create(tmp_path / "one", config())
    execute(one)
    two = Store.create(tmp_path / "two", config())
    assert execute(two, workers=2) == {"done": 4}
    a, b = one.observations(), two.observations()
    pd.testing.assert_frame_equal(a.drop(columns="wall_time"), b.drop(columns="wall_time"))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "scalinglab", *args], **kw)


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_run_exactly_once(tmp_path):
    cfg = {**BASE, "model_scales": [1, 2, 4, 8], "data_scales": [1, 2, 4], "budget": {"steps": 200}, "eval_every": 20}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    directory = tmp_path / "study"
    proc = _cli("study", "run", str(path), "-o", str(directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = directory / "study.sqlite"
    deadline = time.time() + 240
    victim = None
    while time.time() < deadline and victim is None:
        time.sleep(0.2)
        if not db.exists():
            continue
        try:
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
                running = conn.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()
        except sqlite3.OperationalError:  # the runner has created the file but not yet its tables
            continue
        for (run_id,) in running:
            if done >= 1 and (directory / "runs" / run_id / "checkpoint.pt").exists():
                victim = run_id
    assert victim is not None, "the sweep never reached a finished run plus a checkpointed one"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        before = dict(conn.execute("SELECT run_id, finished FROM runs WHERE status = 'done'").fetchall())
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    resume = _cli("study", "resume", str(directory), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    store = Store.open(directory)
    runs = store.runs().set_index("run_id")
    assert (runs["status"] == "done").all()
    for run_id, finished in before.items():  # finished runs were not trained again
        assert runs.loc[run_id, "finished"] == finished
        assert runs.loc[run_id, "attempts"] == 1
    assert runs.loc[victim, "attempts"] == 2
    assert runs.loc[victim, "resumed_from_step"] > 0  # continued from its checkpoint
    obs = store.observations()
    assert not obs.duplicated(["run_id", "steps", "metric", "split"]).any()
    per_run = obs[(obs.metric == "loss") & (obs.split == "eval")].groupby("run_id")["steps"].apply(list)
    assert all(steps == list(range(20, 201, 20)) for steps in per_run)
    assert len(per_run) == 12


def test_cli_errors_and_status(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "scale_by": "height"}))
    proc = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "run", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {bad}: key 'scale_by'")
    proc = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "status", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "not a study directory" in proc.stderr


ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_on_a_real_local_instance(tmp_path):
    store = Store.create(tmp_path / "s", config(model_scales=[1], data_scales=[1, 2]))
    assert execute(store, executor="ray") == {"done": 2}
    assert len(store.observations()) > 0


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    config = load_config(path)  # raises a UserError naming the key on any unknown or invalid study or task key
    assert config.name == path.stem.removesuffix("_study")
    assert build_task(config.task, config.task_options).name == config.task


def test_the_store_and_the_training_loop_share_one_schema(tmp_path):
    from scalinglab.observations import COLUMNS, SCHEMA
    from scalinglab.study import store as store_module

    assert tuple(COLUMNS) == store_module.OBS_COLUMNS
    assert not hasattr(store_module, "SCHEMA")  # the SQL has its own name, DDL
    assert list(SCHEMA) == [c for c in COLUMNS if c in SCHEMA]  # the analysis columns, a subset in table order
    assert list(SCHEMA) == [
        "run_id",
        "n_params",
        "dataset_size",
        "samples_seen",
        "steps",
        "flops",
        "metric",
        "split",
        "value",
    ]
    result = train_run(config(budget={"steps": 8}), RunSpec("m1-d1-s0", 1.0, 1.0, 0), tmp_path / "run")
    assert all(list(row) == list(COLUMNS) for row in result.rows)
    store = Store.create(tmp_path / "s", config(model_scales=[1], data_scales=[1], budget={"steps": 8}))
    execute(store)
    assert list(store.observations().columns) == list(COLUMNS)


def test_executor_events_are_typed_records(tmp_path):
    from scalinglab.study.executors import run_sequential
    from scalinglab.study.records import Done, Started

    events = []
    run_sequential(config(budget={"steps": 8}), [RunSpec("m1-d1-s0", 1.0, 1.0, 0)], tmp_path, events.append)
    assert isinstance(events[0], Started) and events[0].run_id == "m1-d1-s0"
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.step for e in progress] == list(range(1, 9)) and {e.total for e in progress} == {8}
    assert isinstance(events[-1], Done) and events[-1].run_id == "m1-d1-s0"
    assert len([r for r in events[-1].result.rows if r["split"] == "eval" and r["metric"] == "loss"]) == 1


def test_task_options_are_a_hashable_cache_key():
    import functools

    from scalinglab.tasks.perception import PerceptionOptions

    a = PerceptionOptions.model_validate({"classes": ["car", "person"], "data_seed": 1})
    b = PerceptionOptions.model_validate({"data_seed": 1, "classes": ["car", "person"]})
    c = PerceptionOptions.model_validate({"classes": ["person", "car"], "data_seed": 1})
    assert a == b and hash(a) == hash(b) and a.cache_key() == b.cache_key()
    assert a.cache_key() != c.cache_key()  # class order is meaningful (class ids)
    calls = []

    @functools.lru_cache(maxsize=4)
    def load(options):
        calls.append(options)
        return len(calls)

    assert load(a) == load(b) == 1 and load(c) == 2
    with pytest.raises(ValueError):
        a.data_seed = 2  # frozen: a cached key cannot change under the cache


def test_a_checkpoint_that_does_not_fit_is_set_aside_and_the_run_starts_over(tmp_path):
    from scalinglab.study.records import Notice

    cfg = config()
    spec = RunSpec("m4-d1-s0", 4.0, 1.0, 0)
    fresh = train_run(cfg, spec, tmp_path / "fresh")
    other = train_run(cfg, RunSpec("m1-d1-s0", 1.0, 1.0, 0), tmp_path / "other")  # a smaller model's checkpoint
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes((tmp_path / "other" / "checkpoint.pt").read_bytes())
    events = []
    result = train_run(cfg, spec, run_dir, events.append)
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1
    assert "checkpoint.pt could not be loaded: it does not fit this run (RuntimeError" in notices[0].text
    assert "moved to checkpoint.pt.corrupt, training from step 0" in notices[0].text
    assert "\n" not in notices[0].text
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == (tmp_path / "other" / "checkpoint.pt").read_bytes()
    assert result.resumed_from_step == 0 and result.n_params == fresh.n_params != other.n_params
    strip = [{k: v for k, v in row.items() if k != "wall_time"} for row in result.rows]
    assert strip == [{k: v for k, v in row.items() if k != "wall_time"} for row in fresh.rows]


def test_checkpoints_are_loaded_with_weights_only(tmp_path, monkeypatch):
    seen = []
    real_load = torch.load

    def load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    cfg, spec = config(budget={"steps": 8}, eval_every=4), RunSpec("m1-d1-s0", 1.0, 1.0, 0)
    train_run(cfg, spec, tmp_path)
    monkeypatch.setattr(torch, "load", load)
    assert train_run(cfg, spec, tmp_path).resumed_from_step == 8
    assert seen == [True]


@pytest.mark.slow
def test_a_run_held_by_another_process_is_not_trained(tmp_path, lock_holder):
    from scalinglab.study.lock import RunLocked, run_lock

    with lock_holder(tmp_path / "run") as holder:
        with pytest.raises(RunLocked, match=f"held by process {holder.pid}"):
            train_run(config(), RunSpec("m1-d1-s0", 1.0, 1.0, 0), tmp_path / "run")
        assert not (tmp_path / "run" / "checkpoint.pt").exists()
    with run_lock(tmp_path / "run"):  # the kernel released the dead holder's lock
        pass


@pytest.mark.parametrize(
    ("scales", "needle"),
    [
        ({"model_scales": ["1X", float("inf")]}, "key 'model_scales': inf is not a finite positive multiplier"),
        ({"model_scales": ["infX"]}, "key 'model_scales': inf is not a finite positive multiplier"),
        ({"data_scales": [1, float("nan")]}, "key 'data_scales': nan is not a finite positive multiplier"),
        ({"data_scales": [0]}, "key 'data_scales': 0 is not a finite positive multiplier"),
        ({"optimizer": {"lr": float("inf")}}, "key 'optimizer.lr': Input should be a finite number"),
    ],
)
def test_non_finite_values_are_refused(scales, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        config(**scales)


def test_grad_clip_bounds_every_step(tmp_path):
    """Plain SGD at a constant rate moves the weights by lr x the gradient norm per step: with grad_clip c,
    16 steps move them by at most 16 lr c (without clipping, by far more)."""

    def weights(steps: int, clip: float | None, name: str) -> torch.Tensor:
        cfg = config(
            budget={"steps": steps},
            eval_every=steps,
            optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.0, "grad_clip": clip},
            schedule={"kind": "constant"},
        )
        train_run(cfg, RunSpec("m1-d1-s0", 1.0, 1.0, 0), tmp_path / name)
        saved = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["model"]
        return torch.cat([v.flatten().float() for v in saved.values()])

    bound = 16 * 0.5 * 1e-3
    clipped = torch.linalg.vector_norm(weights(24, 1e-3, "c24") - weights(8, 1e-3, "c8"))
    assert 0 < float(clipped) <= bound * (1 + 1e-5)
    free = torch.linalg.vector_norm(weights(24, None, "f24") - weights(8, None, "f8"))
    assert float(free) > 10 * bound
