"""Form selection by extrapolation: forward-chaining folds over compute, checked against a fit done by hand."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab import FormSearch, ScalingLaw
from scalinglab.fit.extrapolation import TOO_FEW, forward_folds, run_compute, score_extrapolation, usable_cuts
from scalinglab.fit.forms import get_form
from scalinglab.fit.law import WARM_GRID_STRIDE
from scalinglab.observations import FitData

# A 6 x 4 grid, two seeds per cell: the runs of one (N, D) cell share their compute.
N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 3.2e7, 6), np.geomspace(1e8, 7e8, 4)))
TRUTH = 1.8 + 400 / N**0.3 + 2e4 / D**0.55


def _data(seed: int = 0, n: np.ndarray = N, d: np.ndarray = D) -> FitData:
    truth = 1.8 + 400 / n**0.3 + 2e4 / d**0.55
    noisy = np.tile(truth, 2) * np.exp(np.random.default_rng(seed).normal(0, 0.003, 2 * truth.size))
    groups = np.array([f"run{i}" for i in range(noisy.size)])
    return FitData(np.stack([np.tile(n, 2), np.tile(d, 2)]), ("n", "d"), noisy, groups, "grid")


def test_folds_hold_out_every_run_above_the_cut_and_keep_cells_whole():
    data = _data()
    labels, compute = run_compute(data)
    folds = forward_folds(data)
    assert [f.quantile for f in folds] == [0.5, 0.625, 0.75, 0.875]
    levels = np.unique(N * D)
    for fold in folds:
        assert fold.cut == levels[int(np.floor(fold.quantile * levels.size))]
        assert set(fold.held_out) == set(labels[compute > fold.cut])
        held = np.isin(data.groups, fold.held_out)
        cells = pd.Series(held).groupby([data.inputs[0], data.inputs[1]]).nunique()
        assert (cells == 1).all()  # both seeds of a cell on the same side of the cut
    sizes = [f.held_out.size for f in folds]
    assert sizes == sorted(sizes, reverse=True)  # each later cut holds out fewer, larger runs


def test_score_matches_fits_done_by_hand():
    # By hand: the lowest cut fitted from the form's grid, each later cut from the basins of the one before and
    # every 8th start of the grid (the runs below a cut include those below the one before: nothing held out).
    data = _data(seed=1)
    template = ScalingLaw(intervals=None)
    folds = usable_cuts(data, forward_folds(data), 5)
    scores, per_run = score_extrapolation(template, "chinchilla", data, None, folds)
    form = get_form("chinchilla")
    by_hand, basins = [], None
    for fold in folds:
        test = np.isin(data.groups, fold.held_out)
        below = data.subset(~test)
        starts = None
        if basins is not None:
            grid = form.start_grid(np.log(below.inputs), np.log(below.y))
            starts = np.vstack([basins, grid[::WARM_GRID_STRIDE]])
        law = ScalingLaw(form="chinchilla", intervals=None, starts=starts).fit(below)
        basins = law.basins_[1:]  # the polished basins (the first row is the fit itself)
        predicted = law.predict(n=data.inputs[0, test], d=data.inputs[1, test])
        by_hand.append(np.mean(np.abs(np.log(predicted) - np.log(data.y[test]))))
        fresh = ScalingLaw(form="chinchilla", intervals=None).fit(below)  # the whole grid on every fold
        # the warm start finds the grid's optimum: a different basin would move the predictions by far more
        np.testing.assert_allclose(predicted, fresh.predict(n=data.inputs[0, test], d=data.inputs[1, test]), rtol=1e-4)
    assert scores["extrap_folds"] == len(folds) == 4
    np.testing.assert_allclose(scores["extrap_log_error"], np.mean(by_hand), rtol=1e-9)
    assert per_run.index.nlevels == 2 and per_run.size == sum(f.held_out.size for f in folds)


def test_search_scores_beyond_the_cuts_and_shows_loo_beside():
    search = FormSearch(ScalingLaw(intervals=None), ["chinchilla", "chinchilla_no_floor"]).fit(_data(seed=2))
    table = search.cv_results_.set_index("form")
    assert search.selection_.scoring == "extrapolation"
    assert {"extrap_log_error", "extrap_se", "extrap_error", "cv_log_error", "cv_se"} <= set(table.columns)
    # the floorless form cannot bend towards the floor the larger runs approach: it extrapolates worse
    assert table.loc["chinchilla", "extrap_log_error"] < table.loc["chinchilla_no_floor", "extrap_log_error"]
    assert search.best_form_ == "chinchilla" and "forward folds" in search.selection_.reason
    assert table.loc["chinchilla", "extrap_se"] == 0.0  # the best is compared with itself


def test_a_grid_too_small_to_cut_falls_back_to_leave_one_out():
    n, d = (a.ravel() for a in np.meshgrid([1e6, 4e6, 1.6e7], [1e8, 4e8]))
    data = _data(seed=3, n=n, d=d)  # 6 cells: no cut leaves 2 values of N and D and more than 4 points
    search = FormSearch(ScalingLaw(intervals=None), ["chinchilla_shared", "chinchilla_no_floor_shared"]).fit(data)
    loo = FormSearch(ScalingLaw(intervals=None), ["chinchilla_shared", "chinchilla_no_floor_shared"], scoring="loo")
    assert search.selection_.reason.startswith(TOO_FEW)
    assert search.best_form_ == loo.fit(data).best_form_


@pytest.fixture
def grid_csv(tmp_path):
    data = _data(seed=4)
    path = tmp_path / "grid.csv"
    pd.DataFrame({"N": data.inputs[0], "D": data.inputs[1], "loss": data.y, "run": data.groups}).to_csv(path)
    return path


def test_cli_fit_selects_by_extrapolation_by_default(grid_csv):
    args = [sys.executable, "-m", "scalinglab", "fit", str(grid_csv), "--n", "N", "--d", "D", "--y", "loss"]
    args += ["--run", "run", "--candidates", "chinchilla,chinchilla_no_floor"]
    out = subprocess.run([*args, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)
    assert fit["selection"]["scoring"] == "extrapolation" and fit["form"] == fit["selection"]["choice"]
    assert all("extrap_log_error" in row for row in fit["selection"]["candidates"])
    table = subprocess.run(args, capture_output=True, text=True)
    assert table.returncode == 0 and "form selection (forward folds by compute" in table.stdout
    loo = subprocess.run([*args, "--select-by", "loo", "--json"], capture_output=True, text=True)
    assert json.loads(loo.stdout)["selection"]["scoring"] == "loo"
    bad = subprocess.run([*args, "--select-by", "aic"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "error: --select-by must be extrapolation or loo, not 'aic'\n"
