"""`study curves`: each run's learning-rate areas rebuilt from the study's schedule, the schedule-aware law per
model recovered from curves drawn from it, its backtest, and the command on a trained study."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from scalinglab.analysis.curves import model_curves, run_curves
from scalinglab.fit.schedule_law import lr_areas
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.schedule import learning_rates, lr_factor
from scalinglab.study.store import Store

BASE = {
    "name": "t",
    "task": "toy",
    "task_options": {"base_samples": 64, "eval_samples": 64},
    "model_scales": [1],
    "data_scales": [1, 2, 4],
    "budget": {"epochs": 4},
    "batch_size": 16,
    "optimizer": {"name": "adamw", "lr": 0.004},
    "schedule": {"kind": "cosine", "warmup_steps": 3},
    "eval_every": 4,
}
TRUTH = {"L0": 0.8, "A": 0.6, "alpha": 0.45, "C": 2.0}


def synthetic(config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A runs table and the eval loss at every 4th step of each run, exactly the law's under its schedule."""
    runs, rows = [], []
    for k, size in enumerate((64, 128, 256)):
        total = config.budget.total_steps(size, config.batch_size)
        rates = learning_rates(config.schedule, total, config.optimizer.lr)
        s1, s2 = lr_areas(rates, warmup=config.schedule.warmup_steps)
        run_id = f"m1-d{2**k}-s0"
        runs.append(
            {
                "run_id": run_id,
                "model_scale": 1.0,
                "status": "done",
                "dataset_size": size,
                "n_params": 100,
                "hparams": None,
            }
        )
        for step in range(4, total + 1, 4):
            value = TRUTH["L0"] + TRUTH["A"] * s1[step - 1] ** -TRUTH["alpha"] - TRUTH["C"] * s2[step - 1]
            rows.append(
                {
                    "run_id": run_id,
                    "metric": "loss",
                    "split": "eval",
                    "steps": step,
                    "samples_seen": step * config.batch_size,
                    "value": value,
                }
            )
    return pd.DataFrame(runs), pd.DataFrame(rows)


def test_the_law_is_recovered_from_curves_drawn_from_it_and_backtests_exactly():
    config = parse_config(BASE)
    runs, obs = synthetic(config)
    (model,) = model_curves(config, runs, obs)
    for name, value in TRUTH.items():
        assert model.law.params_[name] == pytest.approx(value, rel=1e-6)
    assert model.law.at_bounds_ == []
    assert [len(c.lrs) for c in model.curves] == [16, 32, 64]  # 4 epochs of 64, 128, 256 at batch 16
    assert [b["fitted_on_steps"] for b in model.backtest] == [32]
    assert abs(model.backtest[0]["rel_error"]) < 1e-6
    value, lo, hi = model.predict_final(128, config, model.rate)
    rates = learning_rates(config.schedule, 128, config.optimizer.lr)
    s1, s2 = lr_areas(rates, warmup=3)
    expected = TRUTH["L0"] + TRUTH["A"] * s1[-1] ** -TRUTH["alpha"] - TRUTH["C"] * s2[-1]
    assert value == pytest.approx(expected, rel=1e-6) and lo <= value <= hi


def test_each_runs_rates_are_those_it_trained_with(tmp_path):
    config = parse_config({**BASE, "search": {"lr": [0.002, 0.008]}})
    directory = tmp_path / "s"
    store = Store.create(directory, config)
    execute(store)
    found = run_curves(config, store.runs(), store.observations(), "loss", "eval")
    assert len(found) == 6
    for run, curve, lr in found:
        saved = torch.load(directory / "runs" / run.run_id / "checkpoint.pt", weights_only=True)
        assert lr == pytest.approx(saved["optimizer"]["param_groups"][0]["initial_lr"], rel=1e-12)
        assert len(curve.lrs) == saved["step"] == curve.steps[-1]  # the run's length is its budget
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)  # the trainer's scheduler, stepped
        total = saved["step"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i, total=total: lr_factor(i, total, config.schedule))
        stepped = []
        for _ in range(saved["step"]):
            stepped.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        np.testing.assert_allclose(curve.lrs, stepped, rtol=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(saved["optimizer"]["param_groups"][0]["lr"], rel=1e-9)
    cmd = [sys.executable, "-m", "scalinglab", "study", "curves", str(directory), "--json", "--predict-steps", "64"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    models = json.loads(proc.stdout)["models"]
    assert sorted(m["trial"] for m in models) == ["lr 0.002", "lr 0.008"]
    assert all(m["runs"] == 3 and np.isfinite(m["predicted"]) and "backtest" in m for m in models)
    bad = subprocess.run(cmd[:6] + ["--metric", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no rows of metric 'nope' on split 'eval'" in bad.stderr
    from scalinglab.analysis import analyse
    from scalinglab.analysis.load import load_observations
    from scalinglab.report.html import write_report

    obs, source = load_observations(directory)  # the report's path: a study folder carries its runs' schedules
    analysis = analyse(obs, source, metric="loss", split="eval", bootstrap=0, intervals=None)
    assert sorted(m["trial"] for m in analysis.curves) == ["lr 0.002", "lr 0.008"]
    page = write_report(analysis, tmp_path / "report").read_text()
    assert "<h2>Loss curves under the schedule</h2>" in page
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [m["L0"] for m in summary["curves"]] == pytest.approx([m["L0"] for m in analysis.curves])
