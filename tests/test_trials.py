"""Trials per cell: best-of picks each cell's true best trial, and the commands read it by default."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab.observations import best_of, trial_columns
from scalinglab.testing import TRUE_PARAMS, example_trials

LR_LAW = (3.0, -0.25, 0.05)


def run(*args):
    return subprocess.run([sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300)


def true_best_lr(table):
    """Per cell, the tried rate nearest the known optimum in log (the loss is a parabola in log lr)."""
    best = LR_LAW[0] * table.n_params ** LR_LAW[1] * table.dataset_size ** LR_LAW[2]
    distance = np.abs(np.log(table.lr / best))
    return table.loc[distance.groupby([table.n_params, table.dataset_size]).idxmin(), "run_id"]


def test_best_of_picks_the_true_best_trial_per_cell():
    table = example_trials(LR_LAW)
    chosen = best_of(table, ["lr"])
    assert set(chosen.table.run_id) == set(true_best_lr(table))
    assert len(chosen.choices) == 25 and (chosen.choices.trials == 7).all()
    assert (chosen.kept, chosen.runs) == (25, 175)
    assert "25 cells" in chosen.note and "'lr'" in chosen.note


def test_best_of_averages_seeds_and_keeps_every_seed_of_the_best_trial():
    # Two seeds with noise: the trial chosen is the one with the best mean, and both its seeds are kept.
    table = example_trials(LR_LAW, seeds=(0, 1), noise=0.002, seed=3)
    chosen = best_of(table, ["lr"])
    means = table.groupby(["n_params", "dataset_size", "lr"]).value.mean().reset_index()
    expected = means.loc[means.groupby(["n_params", "dataset_size"]).value.idxmin()]
    kept = chosen.table.groupby(["n_params", "dataset_size"]).lr.agg(["first", "nunique", "size"]).reset_index()
    assert (kept["nunique"] == 1).all() and (kept["size"] == 2).all()
    np.testing.assert_array_equal(np.sort(kept["first"]), np.sort(expected.lr))


def test_best_of_higher_is_better_takes_the_largest():
    table = example_trials(LR_LAW)
    table = table.assign(value=10.0 - table.value)  # a higher-is-better score with the same best trials
    assert set(best_of(table, ["lr"], higher_is_better=True).table.run_id) == set(true_best_lr(table))
    assert set(best_of(table, ["lr"]).table.run_id).isdisjoint(true_best_lr(table))


def test_best_of_keeps_every_row_of_the_chosen_runs():
    table = example_trials(LR_LAW)
    curve = table.assign(steps=table.steps / 2, value=table.value + 1.0)  # an earlier checkpoint of every run
    long = pd.concat([curve, table], ignore_index=True)
    chosen = best_of(long, ["lr"])
    assert len(chosen.table) == 50 and set(chosen.table.run_id) == set(true_best_lr(table))


def test_trial_columns_are_the_known_ones_that_vary_within_a_cell():
    table = example_trials(LR_LAW)
    assert trial_columns(table) == ("lr",)  # batch_size is one value everywhere
    assert trial_columns(table.drop(columns="lr")) == ()
    one_per_cell = table.drop_duplicates(["n_params", "dataset_size"])
    assert trial_columns(one_per_cell) == ()


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("trials") / "trials.csv"
    example_trials(LR_LAW).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_fit_reads_the_best_trial_by_default(trials_csv):
    best = run("fit", str(trials_csv), "--form", "chinchilla", "--json")
    assert best.returncode == 0, best.stderr
    assert "best trial of each of 25 cells by 'lr' (25 of 175 runs)" in best.stderr
    params = json.loads(best.stdout)["params"]
    # The best trials lie at most half a doubling off the optimum: within 0.02 (ln 2 / 2)^2 of L(N, D).
    assert params["E"] == pytest.approx(TRUE_PARAMS["E"], abs=0.05)
    every = run("fit", str(trials_csv), "--form", "chinchilla", "--json", "--all-trials")
    assert every.returncode == 0, every.stderr
    assert "best trial" not in every.stderr
    assert json.loads(every.stdout)["n_points"] == 175 and json.loads(best.stdout)["n_points"] == 25


def test_best_of_errors_name_the_column(trials_csv):
    missing = run("fit", str(trials_csv), "--best-of", "lr,momentum")
    assert missing.returncode == 2 and "no column 'momentum' (given for --best-of)" in missing.stderr
    both = run("fit", str(trials_csv), "--best-of", "lr", "--all-trials")
    assert both.returncode == 2 and "--best-of or --all-trials" in both.stderr
