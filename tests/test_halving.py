"""A halving search: each cell's weak trials stop at a rung, by the rule of asynchronous successive halving
(checked against an independent implementation of it on the recorded metrics), their rows kept apart from the
fits, the compute they saved counted, and a run killed around a decision resumed to the same decision."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.study.config import check_task_options, parse_config, spread_order
from scalinglab.study.pruning import PROGRESS, halving_compute
from scalinglab.study.runner import execute
from scalinglab.study.store import Store

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
BASE = {
    "name": "t",
    "task": "toy",
    "task_options": {"base_samples": 128, "eval_samples": 64},
    "model_scales": [1],
    "data_scales": [1, 2],
    "budget": {"steps": 36},
    "batch_size": 16,
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"kind": "cosine", "warmup_steps": 2},
    "eval_every": 4,
}
HALVING = {"method": "halving", "lr": LRS, "reduction_factor": 2, "min_fraction": 0.25}


def config(search=None, **overrides):
    return parse_config({**BASE, "search": {**HALVING, **(search or {})}, **overrides})


def reference_decisions(runs: pd.DataFrame, obs: pd.DataFrame, cfg) -> dict[str, int | None]:
    """Asynchronous successive halving, written from its definition (Li et al. 2020, as Optuna states it): in the
    order the trials trained, at each rung the first eval at or past it; a trial goes on when its value is within
    the best max(1, n // eta) of the n values reported at that rung so far, its own included."""
    search, (metric, higher) = cfg.search, (cfg.search.metric or "loss", cfg.search.metric == "r2")
    eta, total = search.reduction_factor, cfg.budget.steps
    rung_steps = [round(search.min_fraction * PROGRESS) * eta**k for k in range(len(search.rungs()))]
    seen: dict[tuple[str, int], list[float]] = {}
    out: dict[str, int | None] = {}
    for run in runs.itertuples():
        cell = f"{run.model_scale}-{run.data_scale}"
        curve = obs[(obs.run_id == run.run_id) & (obs.metric == metric) & (obs.split == "eval")]
        curve = curve.set_index("steps").value.sort_index()
        out[run.run_id] = None
        for k, rung in enumerate(rung_steps):
            step = next(s for s in curve.index if round(PROGRESS * s / total) >= rung)
            if step >= total:
                break
            values = seen.setdefault((cell, k), [])
            values.append(curve[step])
            keep = max(1, len(values) // eta)
            ranked = sorted(values, reverse=higher)
            if (curve[step] < ranked[keep - 1]) if higher else (curve[step] > ranked[keep - 1]):
                out[run.run_id] = step
                break
    return out


def test_rungs_and_the_order_trials_train_in():
    cfg = config()
    assert cfg.search.rungs() == pytest.approx([0.25, 0.5])
    assert config({"reduction_factor": 3, "min_fraction": 1 / 27}).search.rungs() == pytest.approx(
        [1 / 27, 1 / 9, 1 / 3]
    )
    defaults = parse_config({**BASE, "search": {"method": "halving", "lr": LRS}})
    assert defaults.search.reduction_factor == 3 and defaults.search.min_fraction == pytest.approx(1 / 9)
    assert parse_config(defaults.model_dump(mode="json")).digest() == defaults.digest()  # as the store reloads it
    assert spread_order(6) == [2, 0, 4, 1, 3, 5]
    assert sorted(spread_order(11)) == list(range(11))
    assert [dict(t)["lr"] for t in cfg.search.trials()] == [LRS[i] for i in spread_order(6)]


def test_a_grid_search_keeps_the_digest_it_had_before_halving_existed():
    grid = parse_config(
        {
            **BASE,
            "model_scales": [1, 4],
            "data_scales": [1, 2],
            "budget": {"steps": 12},
            "eval_every": 6,
            "search": {"lr": [0.001, 0.003, 0.01]},
        }
    )
    assert grid.digest() == "04b034540efd6271"  # computed by the code before halving's keys were added
    assert config().digest() != config({"reduction_factor": 3}).digest()


@pytest.mark.parametrize(
    ("search", "extra", "needle"),
    [
        ({"method": "grid"}, {}, "'reduction_factor' is for method 'halving'"),
        ({"lr": [1e-3]}, {}, "at least two trials"),
        ({"reduction_factor": 1}, {}, "search.reduction_factor"),
        ({"min_fraction": 1.0}, {}, "search.min_fraction"),
        ({}, {"resources": {"workers_per_run": 2}}, "set workers_per_run to 1"),
    ],
)
def test_halving_errors_name_the_key(search, extra, needle):
    with pytest.raises(UserError, match=needle):
        config(search, **extra)


def test_an_unknown_metric_is_refused_with_the_tasks_metrics():
    with pytest.raises(UserError, match=r"key 'search.metric': 'minADE' is not an eval metric of task 'toy' \(loss"):
        check_task_options(config({"metric": "minADE"}))


@pytest.mark.parametrize("metric", [None, "r2"])  # lower and higher is better
def test_trials_stop_by_the_rule_of_successive_halving(tmp_path, metric):
    cfg = config({"metric": metric} if metric else None)
    store = Store.create(tmp_path / "s", cfg)
    assert execute(store) == {"done": 12}
    runs, obs = store.runs(), store.observations(pruned=True)
    decided = {r.run_id: None if pd.isna(r.pruned_at) else int(r.pruned_at) for r in runs.itertuples()}
    assert decided == reference_decisions(runs, obs, cfg)
    stopped = {r for r, at in decided.items() if at is not None}
    assert stopped and len(stopped) < len(decided) - 2  # the rule stopped some, and not all but the first
    last = obs.groupby("run_id").steps.max()
    for run_id, at in decided.items():
        assert last[run_id] == (at if at is not None else 36)
    kept = store.observations()
    assert set(kept.run_id) == set(decided) - stopped and "pruned_at" not in kept
    saved = halving_compute(cfg, runs)
    flops = (runs.flops_per_step * [at or 36 for at in decided.values()]).sum()
    assert saved["pruned"] == len(stopped) and saved["flops_trained"] == pytest.approx(flops, rel=1e-12)
    assert saved["saved"] == pytest.approx(1 - flops / (runs.flops_per_step * 36).sum(), rel=1e-12)


def test_a_run_killed_around_its_decision_resumes_to_the_same_decision(tmp_path):
    reference = Store.create(tmp_path / "a", config())
    execute(reference)
    expected = reference.runs().set_index("run_id").pruned_at
    store = Store.create(tmp_path / "b", config())
    execute(store)
    runs = store.runs().set_index("run_id")
    stopped = [r for r in runs.index if not pd.isna(runs.pruned_at[r])]
    killed = {stopped[0]: True, stopped[1]: False, runs.index[0]: True}  # run: its checkpoint survived the kill
    with store.transaction() as conn:  # as a SIGKILL leaves it: running, its observations absent
        for run_id, kept in killed.items():
            conn.execute("UPDATE runs SET status = 'running', pruned_at = NULL WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM observations WHERE run_id = ?", (run_id,))
            if not kept:  # killed after the decision, before its checkpoint: trains again from step 0
                (tmp_path / "b" / "runs" / run_id / "checkpoint.pt").unlink()
    before = reference.observations(pruned=True).set_index(["run_id", "steps", "metric", "split"]).value
    assert execute(store) == {"done": 12}
    after = store.runs().set_index("run_id")
    pd.testing.assert_series_equal(after.pruned_at, expected, check_dtype=False)
    obs = store.observations(pruned=True).set_index(["run_id", "steps", "metric", "split"]).value
    assert not obs.index.duplicated().any()
    pd.testing.assert_series_equal(obs.sort_index(), before.sort_index(), rtol=1e-6)
    untouched = runs.index.drop(list(killed))
    assert (after.attempts[untouched] == 1).all() and (after.attempts[list(killed)] == 2).all()


def test_status_says_what_halving_saved_and_export_keeps_the_pruned_rows_apart(tmp_path):
    directory = tmp_path / "s"
    execute(Store.create(directory, config()))
    status = subprocess.run(
        [sys.executable, "-m", "scalinglab", "study", "status", str(directory)], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert "halving: the best 1/2 of each cell's trials go on at each rung (25%, 50% of the budget)" in status.stdout
    assert "finished trials stopped early" in status.stdout
    out = tmp_path / "all.csv"
    cmd = [sys.executable, "-m", "scalinglab", "study", "export", str(directory), "-o", str(out), "--pruned"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    table = pd.read_csv(out)
    stopped = table[table.pruned_at.notna()]
    assert not stopped.empty and (stopped.steps <= stopped.pruned_at).all()
    assert math.isclose(table.lr.min(), 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor",
    [pytest.param({"workers": 2}, id="local-pool"), pytest.param({"executor": "ray"}, id="ray", marks=pytest.mark.ray)],
)
def test_trials_training_at_once_share_their_cells_rungs(tmp_path, executor):
    import optuna

    if executor.get("executor") == "ray":
        pytest.importorskip("ray")
    directory = tmp_path / "s"
    store = Store.create(directory, config())
    assert execute(store, **executor) == {"done": 12}
    runs, obs = store.runs(), store.observations(pruned=True)
    last = obs.groupby("run_id").steps.max()
    stopped = runs[runs.pruned_at.notna()]
    assert not stopped.empty and set(stopped.pruned_at) <= {12, 20}  # the first evals past the rungs at 25%, 50%
    assert (last[stopped.run_id].to_numpy() == stopped.pruned_at.to_numpy()).all()
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(directory / "search.journal"))
    )
    for summary in optuna.get_all_study_summaries(journal):
        trials = optuna.load_study(study_name=summary.study_name, storage=journal).trials
        states = {t.user_attrs["run_id"]: t.state.name for t in trials}
        assert len(states) == 6 and set(states.values()) <= {"COMPLETE", "PRUNED"}
        assert {r for r, s in states.items() if s == "PRUNED"} == {r for r in stopped.run_id if r in states}
