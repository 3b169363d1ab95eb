"""A study's search: trials per cell, each trained with its own hyperparameters, stored and exported with them,
resumed without repeating one; and each cell's learning rate set from a fitted law."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from scalinglab.errors import UserError
from scalinglab.study.config import load_config, parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store, plan_runs

BASE = {
    "name": "t",
    "task": "toy",
    "task_options": {"base_samples": 128, "eval_samples": 64},
    "model_scales": [1, 4],
    "data_scales": [1, 2],
    "budget": {"steps": 12},
    "batch_size": 16,
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"kind": "cosine", "warmup_steps": 2},
    "eval_every": 6,
}


def config(**overrides):
    return parse_config({**BASE, **overrides})


def initial_lr(directory, run_id):
    saved = torch.load(directory / "runs" / run_id / "checkpoint.pt", weights_only=True)
    return saved["optimizer"]["param_groups"][0]["initial_lr"]


def test_a_grid_search_plans_every_combination_per_cell():
    cfg = config(search={"lr": {"low": 1e-3, "high": 1e-2, "count": 3}, "batch_size": [8, 16]})
    runs = plan_runs(cfg)
    assert len(runs) == 2 * 2 * 3 * 2
    assert {r.run_id for r in runs if r.model_scale == 4 and r.data_scale == 2} == {
        f"m4-d2-s0-lr{lr:g}-bs{b}" for lr in np.geomspace(1e-3, 1e-2, 3) for b in (8, 16)
    }
    trial = dict(runs[0].hparams)
    trained = cfg.for_trial(runs[0].hparams)
    assert trained.optimizer.lr == trial["lr"] and trained.batch_size == trial["batch_size"]
    assert config().digest() == parse_config(BASE).digest()  # no search: the digest a study had before
    assert cfg.digest() != config().digest()


@pytest.mark.parametrize(
    ("search", "extra", "needle"),
    [
        ({}, {}, "name at least one of lr, batch_size"),
        ({"lr": []}, {}, "key 'search.lr'"),
        ({"lr": [0.1, 0.1]}, {}, "lists a value twice"),
        ({"lr": [0.0, 0.1]}, {}, "must be > 0"),
        ({"momentum": [0.9]}, {}, "key 'search.momentum': unknown key"),
        ({"lr": {"low": 1e-2, "high": 1e-3, "count": 3}}, {}, "'high' must be above 'low'"),
        ({"batch_size": [12]}, {"resources": {"workers_per_run": 8}}, "12 must be a multiple"),
        ({"lr": [1e-3]}, {"optimizer": {"lr_law": {"scale": 1.0, "exponents": {"n": -0.3}}}}, "keep one"),
    ],
)
def test_search_errors_name_the_key(search, extra, needle):
    with pytest.raises(UserError, match=needle):
        config(search=search, **extra)


def test_search_and_branches_are_refused():
    with pytest.raises(UserError, match="search and branches together"):
        config(
            search={"lr": [1e-3]},
            branches=True,
            budget={"epochs": 1},
            schedule={"kind": "wsd", "decay_fraction": 0.25},
        )


def test_each_trial_trains_with_its_own_hyperparameters_and_is_exported_with_them(tmp_path):
    cfg = config(model_scales=[1], data_scales=[1], search={"lr": [0.001, 0.01], "batch_size": [8, 16]})
    store = Store.create(tmp_path / "s", cfg)
    assert execute(store) == {"done": 4}
    for run_id, lr, batch in (("m1-d1-s0-lr0.001-bs8", 0.001, 8), ("m1-d1-s0-lr0.01-bs16", 0.01, 16)):
        assert initial_lr(tmp_path / "s", run_id) == pytest.approx(lr, rel=1e-12)
        obs = store.observations()
        rows = obs[(obs.run_id == run_id) & (obs.metric == "loss") & (obs.split == "eval")]
        assert (rows.lr == lr).all() and (rows.batch_size == batch).all()
        assert (rows.samples_seen == rows.steps * batch).all()
    losses = obs[(obs.metric == "loss") & (obs.split == "eval") & (obs.steps == 12)].set_index("run_id").value
    assert losses.nunique() == 4  # four different runs, not one run four times


def test_a_resumed_search_repeats_no_finished_trial(tmp_path):
    cfg = config(model_scales=[1], search={"lr": [0.001, 0.003, 0.01]})
    store = Store.create(tmp_path / "s", cfg)
    assert execute(store) == {"done": 6}
    before = store.runs().set_index("run_id")
    victim = "m1-d2-s0-lr0.003"
    with store.transaction() as conn:  # as a SIGKILL leaves it: one trial running, its observations absent
        conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (victim,))
        conn.execute("DELETE FROM observations WHERE run_id = ?", (victim,))
    assert [spec.run_id for spec in store.runs_to_do()] == [victim]
    assert dict(store.runs_to_do()[0].hparams) == {"lr": 0.003}
    assert execute(store) == {"done": 6}
    after = store.runs().set_index("run_id")
    for run_id in before.index.drop(victim):
        assert after.loc[run_id, "finished"] == before.loc[run_id, "finished"]
        assert after.loc[run_id, "attempts"] == 1
    assert after.loc[victim, "attempts"] == 2
    obs = store.observations()
    assert not obs.duplicated(["run_id", "steps", "metric", "split"]).any()
    assert set(obs.loc[obs.run_id == victim, "lr"]) == {0.003}


def test_the_exported_search_is_read_best_of_by_fit(tmp_path):
    cfg = config(search={"lr": [0.0003, 0.003, 0.03]})
    directory = tmp_path / "s"
    store = Store.create(directory, cfg)
    execute(store)
    out = tmp_path / "obs.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "export", str(directory), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    fit = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalinglab",
            "fit",
            str(out),
            "--metric",
            "loss",
            "--split",
            "eval",
            "--form",
            "chinchilla_no_floor",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert "best trial of each of 4 cells by 'lr' (4 of 12 runs)" in fit.stderr
    status = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "status", str(directory)], capture_output=True, text=True
    )
    assert "search: 3 trials per cell over lr (3 values)" in status.stdout


def test_lr_law_sets_each_cells_rate_from_its_n_and_d(tmp_path):
    law = {"scale": 0.5, "exponents": {"n": -0.3, "d": 0.1}}
    laws = tmp_path / "laws.json"
    laws.write_text(json.dumps({"hparam_laws": {"lr": {"nd": law, "c": None}}}))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, "optimizer": {"name": "adamw", "lr_law": "laws.json"}}))
    cfg = load_config(path)
    assert cfg.optimizer.lr_law.scale == 0.5
    store = Store.create(tmp_path / "s", cfg)
    execute(store)
    runs = store.runs().set_index("run_id")
    rates = {initial_lr(tmp_path / "s", r) for r in runs.index}
    assert len(rates) == 4
    for run_id, run in runs.iterrows():
        expected = 0.5 * run.n_params**-0.3 * run.dataset_size**0.1
        assert initial_lr(tmp_path / "s", run_id) == pytest.approx(expected, rel=1e-12)
    laws.write_text(json.dumps({"hparam_laws": {"lr": {"nd": None}}}))
    with pytest.raises(UserError, match="key 'optimizer.lr_law'.*holds no learning-rate law in N and D"):
        load_config(path)
    laws.unlink()
    with pytest.raises(UserError, match="key 'optimizer.lr_law'.*cannot be read"):
        load_config(path)


def test_batch_size_law_sets_each_cells_batch_from_its_n_and_d(tmp_path):
    law = {"scale": 4000.0, "exponents": {"n": -0.5, "d": 0.25}}
    laws = tmp_path / "laws.json"
    laws.write_text(json.dumps({"hparam_laws": {"batch_size": {"nd": law, "c": None}}}))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, "batch_size_law": "laws.json", "resources": {"workers_per_run": 1}}))
    cfg = load_config(path)
    assert cfg.batch_size_law.exponents == {"n": -0.5, "d": 0.25}
    assert config().digest() == parse_config(BASE).digest()  # the key at its default: the digest it had
    store = Store.create(tmp_path / "s", cfg)
    execute(store)
    runs = store.runs().set_index("run_id")
    obs = store.observations()
    sizes = set()
    for run_id, run in runs.iterrows():
        expected = max(1, round(4000.0 * run.n_params**-0.5 * run.dataset_size**0.25))
        rows = obs[(obs.run_id == run_id) & (obs.split == "eval") & (obs.metric == "loss")]
        assert (rows.samples_seen == rows.steps * expected).all()  # each step took the law's batch
        sizes.add(expected)
    assert len(sizes) > 1
    with pytest.raises(UserError, match="search.batch_size and batch_size_law both set the batch size"):
        config(batch_size_law=law, search={"batch_size": [8, 16]})
    laws.write_text(json.dumps({"hparam_laws": {"lr": {"nd": law}}}))
    with pytest.raises(UserError, match="key 'batch_size_law'.*holds no batch-size law in N and D"):
        load_config(path)
