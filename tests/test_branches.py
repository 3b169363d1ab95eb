"""Cooldown branches: the data scales of a model size as branches of one wsd run (study/branches.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from scalinglab.errors import UserError
from scalinglab.study.branches import branch_file, branch_step, decay_start, waves
from scalinglab.study.config import ScheduleConfig, parse_config
from scalinglab.study.records import Progress
from scalinglab.study.runner import execute
from scalinglab.study.schedule import lr_factor
from scalinglab.study.store import Store, plan_runs
from scalinglab.study.train import train_run

# 256 samples at data scale 1, one epoch of batches of 16: 16, 32 and 64 steps; the last quarter cools down
BASE = {
    "name": "b",
    "task": "toy",
    "task_options": {"base_samples": 256, "eval_samples": 128},
    "model_scales": [1],
    "data_scales": [1, 2, 4],
    "budget": {"epochs": 1},
    "batch_size": 16,
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"kind": "wsd", "warmup_steps": 2, "decay_fraction": 0.25},
    "eval_every": 4,
    "branches": True,
}


def config(**overrides):
    return parse_config({**BASE, **overrides})


def test_a_branch_leaves_where_its_cooldown_starts_and_the_trunk_is_still_stable():
    wsd = ScheduleConfig(kind="wsd", warmup_steps=2, decay_fraction=0.25)
    assert [decay_start(t, wsd) for t in (16, 32, 64)] == [12, 24, 48]
    assert branch_step(16, 64, wsd) == 12 and branch_step(32, 64, wsd) == 24
    assert branch_step(64, 64, wsd) is None  # the trunk itself
    assert branch_step(1, 64, wsd) is None  # a one-step cell cools down from its first step: nothing shared
    # the rates agree up to the branch point: the same run until there
    for step in range(12):
        assert lr_factor(step, 16, wsd) == lr_factor(step, 64, wsd)
    assert lr_factor(12, 16, wsd) < lr_factor(12, 64, wsd)
    cfg = config()
    first, later = waves(cfg, plan_runs(cfg))
    assert [s.data_scale for s in first] == [4] and [s.data_scale for s in later] == [1, 2]


def test_branches_need_a_wsd_schedule_and_an_epochs_budget():
    with pytest.raises(UserError, match="key '\\(top level\\)': branches need schedule.kind 'wsd'"):
        config(schedule={"kind": "cosine"})
    with pytest.raises(UserError, match="branches need budget.epochs"):
        config(budget={"steps": 100})
    assert config(resources={"workers_per_run": 2}).resources.workers_per_run == 2  # data-parallel: on Ray Train
    assert config(branches=False).digest() != config().digest()


def _specs():
    return {s.run_id: s for s in plan_runs(config())}


def _trained(spec, run_dir):
    steps = []
    result = train_run(config(), spec, run_dir, lambda e: steps.append(e.step) if isinstance(e, Progress) else None)
    return result, steps


def _eval_values(result) -> dict[tuple[str, int], float]:
    return {(r["metric"], r["steps"]): r["value"] for r in result.rows if r["split"] == "eval"}


def test_a_branch_trains_its_cooldown_only_and_is_the_run_it_replaces(tmp_path):
    specs, runs = _specs(), tmp_path / "s" / "runs"
    trunk, trunk_steps = _trained(specs["m1-d4-s0"], runs / "m1-d4-s0")
    assert trunk_steps == list(range(1, 65)) and trunk.parent is None
    assert {p.name for p in (runs / "m1-d4-s0").glob("branch-*.pt")} == {branch_file(12), branch_file(24)}
    branch, steps = _trained(specs["m1-d1-s0"], runs / "m1-d1-s0")
    assert steps == list(range(13, 17))  # 4 of its 16 steps: the trunk's first 12 are its own
    assert (branch.parent, branch.shared_steps, branch.resumed_from_step) == ("m1-d4-s0", 12, 0)
    # D is the distinct samples the cell sees: 16 steps x 16 of the pool of 1,024
    assert branch.dataset_size == 256 and trunk.dataset_size == 1024
    assert {r["run_id"] for r in branch.rows} == {"m1-d1-s0"} and {r["dataset_size"] for r in branch.rows} == {256}
    # the same cell trained from step 0, with no trunk beside it: the same curve, eval for eval
    alone, alone_steps = _trained(specs["m1-d1-s0"], tmp_path / "alone" / "runs" / "m1-d1-s0")
    assert alone_steps == list(range(1, 17)) and alone.shared_steps == 0
    mine, theirs = _eval_values(branch), _eval_values(alone)
    assert mine.keys() == theirs.keys() and len(mine) >= 4
    np.testing.assert_allclose([mine[k] for k in sorted(mine)], [theirs[k] for k in sorted(mine)], rtol=1e-5)
    train_mine = [r["value"] for r in branch.rows if r["split"] == "train"]
    train_alone = [r["value"] for r in alone.rows if r["split"] == "train"]
    np.testing.assert_allclose(train_mine, train_alone, rtol=1e-5)  # the loss window spans the branch point


@pytest.mark.slow
def test_a_killed_branch_study_resumes_without_repeating_or_losing_steps(tmp_path):
    cfg = {**BASE, "model_scales": [1, 2], "task_options": {"base_samples": 2048, "eval_samples": 128}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    directory = tmp_path / "study"
    args = [sys.executable, "-m", "scalinglab", "study", "run", str(path), "-o", str(directory)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db, deadline, victim = directory / "study.sqlite", time.time() + 240, None
    while time.time() < deadline and victim is None and proc.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(db) as conn:
                running = conn.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()
        except sqlite3.OperationalError:  # not created yet
            continue
        for (run_id,) in running:  # a branch (data scale 1 or 2) killed in its cooldown, after a checkpoint
            if "-d4-" not in run_id and (directory / "runs" / run_id / "checkpoint.pt").exists():
                victim = run_id
    assert victim is not None, "the study never had a branch running with a checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resume = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "resume", str(directory)], capture_output=True, text=True
    )
    assert resume.returncode == 0, resume.stderr
    store = Store.open(directory)
    runs = store.runs().set_index("run_id")
    assert (runs["status"] == "done").all()
    assert runs.loc[victim, "resumed_from_step"] > runs.loc[victim, "shared_steps"] > 0  # its own checkpoint
    obs = store.observations()
    assert not obs.duplicated(["run_id", "steps", "metric", "split"]).any()
    eval_steps = obs[(obs.metric == "loss") & (obs.split == "eval")].groupby("run_id")["steps"].apply(list)
    totals = {"1": 128, "2": 256, "4": 512}  # 2,048 x scale / 16
    for run_id, steps in eval_steps.items():
        total = totals[run_id.split("-d")[1].split("-")[0]]
        assert steps == list(range(4, total + 1, 4))  # every eval step once, none lost
    status = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "status", str(directory)], capture_output=True, text=True
    )
    assert "branches: 4 cells cooled down from their trunks" in status.stdout
    # as trained: each trunk in full plus its branches' cooldowns; in full: every cell from step 0
    trained, full = 2 * (512 + 32 + 64), 2 * (512 + 128 + 256)
    assert f"{1 - trained / full:.0%} saved" in status.stdout


def test_the_report_says_what_the_branches_saved(tmp_path):
    from scalinglab.analysis import analyse, load_observations
    from scalinglab.report.html import write_report

    store = Store.create(tmp_path / "s", config())
    execute(store)
    obs, source = load_observations(tmp_path / "s")
    # 16 + 32 + 64 steps in full; the trunk's 64 plus the branches' 4 + 8 as trained
    assert obs.attrs["branches"]["saved"] == pytest.approx(1 - 76 / 112)
    analysis = analyse(obs, source, bootstrap=0, form="chinchilla", intervals=None)
    write_report(analysis, tmp_path / "report")
    assert "Cooldown branches: 2 cells cooled down" in (tmp_path / "report" / "index.html").read_text()
