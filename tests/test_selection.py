"""Form selection by leave-one-run-out error: the generating form is chosen, folds really hold data out."""

import numpy as np
import pytest

from scalinglab.fit.forms import get_form
from scalinglab.fit.selection import cross_validate, held_out_groups, one_se_choice, select_form
from scalinglab.observations import FitData

N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 3.2e7, 6), np.geomspace(1e8, 7e8, 4)))  # a 6 x 4 grid
TRUTHS = {
    "chinchilla": 1.8 + 400 / N**0.3 + 2e4 / D**0.55,
    "chinchilla_shared": 1.8 + 400 / N**0.35 + 2e3 / D**0.35,
    "chinchilla_no_floor": 400 / N**0.3 + 2e4 / D**0.4,
    "chinchilla_no_floor_shared": 400 / N**0.35 + 4e3 / D**0.35,
    "kaplan": ((1e13 / N) ** (0.076 / 0.095) + 5e13 / D) ** 0.095,
}


def _data(y: np.ndarray, seed: int, groups=None) -> FitData:
    noisy = y * np.exp(np.random.default_rng(seed).normal(0, 0.003, y.size))
    return FitData(np.stack([N, D]), ("n", "d"), noisy, groups, "grid")


@pytest.mark.parametrize("truth", list(TRUTHS))
def test_selection_picks_the_generating_form(truth):
    selection, laws = select_form(_data(TRUTHS[truth], seed=0))
    assert selection.choice == truth, selection.table
    assert set(laws) == set(TRUTHS)
    assert selection.table["chosen"].sum() == 1
    assert selection.to_dict()["held_out"] == "point"


def test_fixed_floor_is_a_candidate_with_one_parameter_fewer():
    selection, laws = select_form(_data(TRUTHS["chinchilla"], seed=1), ["chinchilla", "chinchilla_floor=1.8"])
    row = selection.table.set_index("form").loc["chinchilla_floor=1.8"]
    assert row["free_params"] == 4
    assert laws["chinchilla_floor=1.8"].params_["E"] == pytest.approx(1.8, rel=1e-12)
    assert get_form("chinchilla_floor=1.8").formula.startswith("L = 1.8 +")


def test_held_out_prediction_equals_a_refit_without_that_run():
    groups = np.repeat(np.arange(12), 2)  # two points per run
    data = _data(TRUTHS["chinchilla_shared"], seed=2, groups=groups)
    selection, laws = select_form(data, ["chinchilla_shared"])
    assert selection.unit == "run" and int(selection.table["folds"][0]) == 12
    residual, fold = cross_validate(laws["chinchilla_shared"], data)
    from scalinglab import ScalingLaw

    keep = groups != 5
    sub = FitData(data.inputs[:, keep], ("n", "d"), data.y[keep], groups[keep], "grid")
    refit = ScalingLaw(form="chinchilla_shared").fit(sub)
    direct = np.log(refit.predict(n=N[~keep], d=D[~keep])) - np.log(data.y[~keep])
    np.testing.assert_allclose(residual[fold == 5], direct, atol=1e-6)


def test_seeds_of_one_cell_are_held_out_together():
    """Two seeds per (N, D) cell: each fold leaves out both, and its prediction is a refit without the cell."""
    truth = np.tile(TRUTHS["chinchilla_shared"], 2)
    noisy = truth * np.exp(np.random.default_rng(3).normal(0, 0.003, truth.size))
    runs = np.arange(truth.size)  # one point per run, runs r and r + 24 share a cell
    data = FitData(np.stack([np.tile(N, 2), np.tile(D, 2)]), ("n", "d"), noisy, runs, "grid")
    fold, unit = held_out_groups(data)
    assert unit == "cell"
    np.testing.assert_array_equal(fold[:24], fold[24:])
    assert np.unique(fold).size == 24
    selection, laws = select_form(data, ["chinchilla_shared"])
    assert selection.unit == "cell" and int(selection.table["folds"][0]) == 24
    residual, fold = cross_validate(laws["chinchilla_shared"], data)
    from scalinglab import ScalingLaw

    cell = fold[7]
    keep = fold != cell
    sub = FitData(data.inputs[:, keep], ("n", "d"), noisy[keep], runs[keep], "grid")
    refit = ScalingLaw(form="chinchilla_shared").fit(sub)
    direct = np.log(refit.predict(n=data.inputs[0, ~keep], d=data.inputs[1, ~keep])) - np.log(noisy[~keep])
    np.testing.assert_allclose(residual[fold == cell], direct, atol=1e-6)


def test_checkpoints_group_by_the_inputs_constant_within_a_run():
    """Checkpoint data (n, d fixed per run, samples seen growing): the cell is (n, d), whatever the run id."""
    n = np.repeat([1.0, 1.0, 2.0], 3)
    d = np.repeat([5.0, 5.0, 5.0], 3)
    seen = np.tile([1.0, 2.0, 3.0], 3)
    runs = np.repeat(["a", "b", "c"], 3)
    data = FitData(np.stack([n, d, seen]), ("n", "d", "seen"), np.ones(9), runs, "t")
    fold, unit = held_out_groups(data)
    assert unit == "cell"
    np.testing.assert_array_equal(fold, np.repeat([0, 0, 1], 3))
    one_seed = FitData(data.inputs[:, 3:], ("n", "d", "seen"), np.ones(6), runs[3:], "t")
    fold, unit = held_out_groups(one_seed)
    assert unit == "run"
    np.testing.assert_array_equal(fold, np.repeat([0, 1], 3))


def test_one_se_rule_prefers_the_simpler_form_within_one_standard_error():
    import pandas as pd

    table = pd.DataFrame(
        {
            "form": ["big", "small"],
            "free_params": [5, 4],
            "cv_log_error": [0.010, 0.011],
            "cv_se": [0.002, 0.002],
            "cv_error": [0.01, 0.011],
        }
    )
    assert one_se_choice(table)[0] == "small"
    table.loc[1, "cv_log_error"] = 0.013
    assert one_se_choice(table)[0] == "big"


def test_one_se_rule_puts_fits_with_a_parameter_at_a_bound_last():
    """Within one SE, a fit with a parameter at its bound ranks after every fit without, however simple."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "form": ["edge", "nested", "big"],
            "free_params": [3, 4, 5],
            "cv_log_error": [0.010, 0.011, 0.0105],
            "cv_se": [0.002, 0.002, 0.002],
            "cv_error": [0.01, 0.011, 0.0105],
            "at_bounds": ["E", None, None],
        }
    )
    choice, reason = one_se_choice(table)
    assert choice == "nested" and "no parameter at a bound" in reason
    table.loc[1:, "cv_log_error"] = 0.013  # outside one SE: the fit at a bound is the only one left
    assert one_se_choice(table)[0] == "edge"


def test_a_floor_at_its_bound_gives_way_to_the_nested_form_without_it():
    """A pure power law in N and D (no floor), two seeds per cell: chinchilla and chinchilla_shared put E at
    its bound, and the nested form that sets E = 0 is chosen with every parameter inside its box."""
    truth = np.tile(TRUTHS["chinchilla_no_floor_shared"], 2)
    noisy = truth * np.exp(np.random.default_rng(4).normal(0, 0.01, truth.size))
    data = FitData(np.stack([np.tile(N, 2), np.tile(D, 2)]), ("n", "d"), noisy, np.arange(truth.size), "grid")
    selection, laws = select_form(data)
    table = selection.table.set_index("form")
    assert laws["chinchilla"].at_bounds_ == ["E"]
    assert table.loc["chinchilla", "at_bounds"] == "E"
    assert selection.choice == "chinchilla_no_floor_shared", selection.table
    assert laws[selection.choice].at_bounds_ == []


@pytest.mark.slow
def test_cli_fit_auto_reports_the_selection(tmp_path):
    import json
    import subprocess
    import sys

    import pandas as pd

    y = TRUTHS["chinchilla_shared"] * np.exp(np.random.default_rng(3).normal(0, 0.003, N.size))
    path = tmp_path / "grid.csv"
    pd.DataFrame({"Model Size": N, "Samples": D, "minADE": y}).to_csv(path, index=False)
    args = [sys.executable, "-m", "scalinglab", "fit", str(path), "--n", "Model Size", "--d", "Samples"]
    args += ["--select-by", "loo"]  # leave-one-out; the default (by extrapolation) is in tests/test_extrapolation.py
    out = subprocess.run([*args, "--y", "minADE", "--form", "auto", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)
    assert fit["form"] == fit["selection"]["choice"] == "chinchilla_shared"
    assert {row["form"] for row in fit["selection"]["candidates"]} == set(TRUTHS)
    assert fit["intervals"] == "profile" and fit["not_identified"] == []
    assert all(None not in bounds for bounds in fit["ci"].values())
    table = subprocess.run([*args, "--y", "minADE", "--form", "auto"], capture_output=True, text=True)
    assert table.returncode == 0 and "form selection (leave one point out)" in table.stdout


def test_auto_with_bootstrap_intervals_keeps_the_chosen_fit():
    from scalinglab import ScalingLaw, fit_law

    data = _data(TRUTHS["chinchilla_shared"], seed=4)
    law = fit_law("auto", data, law_options={"intervals": "bootstrap", "bootstrap": 50, "seed": 1}, select_by="loo")
    direct = ScalingLaw(form=law.selection_.choice, intervals="bootstrap", bootstrap=50, seed=1).fit(data)
    assert law.form_.name == law.selection_.choice == "chinchilla_shared"
    assert law.params_ == direct.params_
    assert law.ci_ == direct.ci_ and law.ci_ is not None


def test_saved_fit_keeps_its_selection(tmp_path):
    from scalinglab import ScalingLaw

    law = ScalingLaw(form="auto", intervals=None).fit(_data(TRUTHS["chinchilla_no_floor"], seed=2))
    law.save(tmp_path / "fit.json")
    loaded = ScalingLaw.load(tmp_path / "fit.json")
    assert loaded.selection_.choice == law.selection_.choice == "chinchilla_no_floor"
    assert loaded.selection_.reason == law.selection_.reason
    assert loaded.to_dict()["selection"] == law.to_dict()["selection"]
