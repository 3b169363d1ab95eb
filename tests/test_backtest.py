"""Backtesting and form selection on curves drawn from known laws."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.fit.backtest import Choice, backtest, choose_form, holdout_mask
from scalinglab.fit.forms import get_form
from scalinglab.fit.law import ScalingLaw
from scalinglab.observations import FitData, select_fit_data
from scalinglab.testing import example_observations


def one_var(form_name, truth, x, noise=0.002, seed=0):
    form = get_form(form_name)
    lx = np.log(x)[None, :]
    y = np.exp(form.log_predict(form.from_public(truth)[None, :], lx)[0])
    y = y * np.exp(np.random.default_rng(seed).normal(0, noise, x.size))
    return FitData(x[None, :], ("x",), y, None, "synthetic")


def test_holdout_kinds_are_exact():
    x = np.array([5.0, 1.0, 3.0, 4.0, 2.0, 4.0])
    data = FitData(x[None, :], ("x",), np.ones(6), None, "t")
    np.testing.assert_array_equal(holdout_mask("largest:1", data), x == 5)
    np.testing.assert_array_equal(holdout_mask("largest:2", data), x >= 4)  # the tie at 4 is held out whole
    np.testing.assert_array_equal(holdout_mask("frac:0.5", data), x >= 4)
    table = pd.DataFrame({"size": x * 10})
    np.testing.assert_array_equal(holdout_mask("size>25", data, table), x > 2.5)
    np.testing.assert_array_equal(holdout_mask("size <= 20", data, table), x <= 2)
    for bad in ("largest:6", "frac:1.5", "size>100", "nope>1", "middle:2"):
        with pytest.raises(UserError):
            holdout_mask(bad, data, table)


def test_holdout_by_column_follows_the_selected_rows():
    obs = example_observations()
    both = pd.concat([obs.assign(metric="acc"), obs], ignore_index=True)  # the loss rows come second
    data = select_fit_data(both, ("n", "d"), metric="loss", n_params=5)
    mask = holdout_mask("n_params>1e9", data, both)
    np.testing.assert_array_equal(mask, data.inputs[0] > 1e9)


def test_the_true_one_variable_form_ranks_first():
    data = one_var("power_offset", {"E": 1.5, "A": 300.0, "alpha": 0.3}, np.geomspace(1e4, 1e10, 30))
    result = backtest(data, holdout_mask("frac:0.3", data), ["power", "power_offset"], bootstrap=50)
    assert list(result.scores["form"]) == ["power_offset", "power"]
    best = result.scores.iloc[0]
    assert best["rmsle"] < 0.01 and 0.0 <= best["coverage"] <= 1.0
    assert result.recommendation.startswith("power_offset")
    assert result.agreement.loc["power", "power"] == 1.0
    assert result.agreement.loc["power", "power_offset"] == result.agreement.loc["power_offset", "power"]


def test_the_true_two_variable_form_ranks_first():
    obs = example_observations(noise=0.003)
    data = select_fit_data(obs, ("n", "d"), n_params=5)
    result = backtest(data, holdout_mask("largest:8", data), ["kaplan", "chinchilla"], bootstrap=0)
    assert result.scores.iloc[0]["form"] == "chinchilla"


@pytest.mark.slow
def test_automatic_choice_uses_only_the_data_given():
    data = one_var("power_offset", {"E": 1.5, "A": 300.0, "alpha": 0.3}, np.geomspace(1e4, 1e10, 30))
    assert choose_form(data, ["power", "power_offset"]).form == "power_offset"
    pure = one_var("power", {"A": 50.0, "alpha": 0.3}, np.geomspace(1e4, 1e10, 30), noise=0.001)
    assert choose_form(pure, ["power", "bnsl1"]).form in ("power", "bnsl1")
    # M4 by least squares on log y when it is offered and the points leave two degrees of freedom.
    assert choose_form(data, ["power", "m4"]) == Choice("m4", "mse", choose_form(data, ["m4"]).reason)
    short = FitData(data.inputs[:, :6], data.input_names, data.y[:6], None, "short")
    assert choose_form(short, ["power_offset", "m4"]).form == "power_offset"


def test_auto_row_scores_the_choice_made_from_the_kept_points():
    truth = {"eps_inf": 0.1, "gap": 0.8, "alpha": 0.7, "beta": 30.0, "c": 0.4}
    data = one_var("m4", truth, np.geomspace(1e3, 1e9, 30), noise=0.002)
    mask = holdout_mask("largest:6", data)
    result = backtest(data, mask, ["power", "m4", "auto"], bootstrap=0)
    assert result.auto.form == "m4" and result.auto.loss == "mse"
    scores = result.scores.set_index("form")
    # Its score is that of M4 fitted by least squares on the kept points, computed independently here.
    train = FitData(data.inputs[:, ~mask], data.input_names, data.y[~mask], None, "t")
    law = ScalingLaw(form="m4", loss="mse").fit(train)
    with pytest.warns(UserWarning, match="far extrapolation"):
        pred = law.predict(x=data.inputs[0, mask])
    expected = np.sqrt(np.mean(np.log(np.asarray(pred) / data.y[mask]) ** 2))
    assert scores.loc["auto", "rmsle"] == pytest.approx(expected, rel=1e-6)
    assert scores.loc["auto", "rmsle"] < scores.loc["power", "rmsle"]


def test_m4_solves_its_implicit_law_and_recovers_parameters():
    truth = {"eps_inf": 0.1, "gap": 0.8, "alpha": 0.7, "beta": 30.0, "c": 0.4}
    x = np.geomspace(1e3, 1e9, 40)
    exact = one_var("m4", truth, x, noise=0.0)
    y = exact.y
    lhs = (y - 0.1) / (0.9 - y) ** 0.7
    np.testing.assert_allclose(lhs, 30.0 * x**-0.4, rtol=1e-10)
    from scalinglab import ScalingLaw

    law = ScalingLaw(form="m4").fit(one_var("m4", truth, x, noise=0.002))
    assert law.params_["eps_inf"] == pytest.approx(0.1, rel=0.05)
    assert law.params_["c"] == pytest.approx(0.4, abs=0.05)


@pytest.mark.slow
def test_cli_backtest(tmp_path):
    path = tmp_path / "obs.csv"
    example_observations().to_csv(path, index=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalinglab",
            "backtest",
            str(path),
            "--holdout",
            "largest:6",
            "--bootstrap",
            "20",
            "--forms",
            "chinchilla,kaplan,auto",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n_test"] == 6 and {s["form"] for s in out["scores"]} == {"chinchilla", "kaplan", "auto"}
    # Two-variable forms: auto is the one that best predicts the kept runs beyond compute cuts among them.
    assert out["auto"]["form"] in ("chinchilla", "kaplan") and "forward folds" in out["auto"]["reason"]
    # every form predicts every held-out point, observed values read back from the file's rows
    table = pd.read_csv(path)
    assert len(out["predictions"]) == 3 * 6
    for row in out["predictions"]:
        assert row["method"] in ("chinchilla", "kaplan", "auto") and row["lower"] <= row["upper"]
        assert row["observed"] == pytest.approx(table["value"].iloc[row["row"] - 1], rel=1e-12)
        assert row["run"] == table["run_id"].iloc[row["row"] - 1]
    bad = subprocess.run(
        [sys.executable, "-m", "scalinglab", "backtest", str(path), "--holdout", "largest:99"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "holds out 99 of 42" in bad.stderr


def test_wider_prediction_intervals_cover_at_least_as_many_points():
    # The same seed draws the same refits and residuals: a higher ci_level only widens each interval.
    data = one_var("power_offset", {"E": 1.5, "A": 300.0, "alpha": 0.3}, np.geomspace(1e4, 1e10, 30), noise=0.01)
    mask = holdout_mask("frac:0.3", data)
    coverage = {
        level: backtest(data, mask, ["power_offset"], bootstrap=40, ci_level=level).scores["coverage"].iloc[0]
        for level in (0.5, 0.99)
    }
    assert coverage[0.99] >= coverage[0.5] and coverage[0.99] > 0.5


def test_direct_and_two_step_backtests_predict_the_same_held_out_points():
    from scalinglab.fit.backtest import backtest_via
    from scalinglab.testing import chinchilla_loss

    rng = np.random.default_rng(0)
    rows = []
    for n in np.geomspace(1e7, 3e9, 5):
        for d_final in np.geomspace(2e8, 2e11, 3):
            for k in (1, 2, 3):
                d = d_final * k / 3
                loss = chinchilla_loss(np.array([n]), np.array([d]))[0] * np.exp(rng.normal(0, 0.003))
                acc = 0.25 + 0.65 / (1 + np.exp(6 * (loss - 2.6))) + rng.normal(0, 0.005)
                rows.append(
                    {
                        "run_id": f"{n:.2g}/{d_final:.2g}",
                        "n_params": n,
                        "dataset_size": d,
                        "steps": k,
                        "loss": loss,
                        "acc": acc,
                    }
                )
    table = pd.DataFrame(rows)
    result = backtest_via(
        table,
        ("n", "d"),
        "loss",
        "n_params>1e9",
        ["chinchilla"],
        {"y": "acc"},
        link="sigmoid",
        higher_is_better=True,
        bootstrap=20,
        final_only=False,
    )
    assert set(result.scores["method"]) == {"direct:chinchilla", "two_step:chinchilla"}
    held = table[table["n_params"] > 1e9]
    assert sorted(result.held_out_runs) == sorted(held["run_id"].unique())
    for method, points in result.points.groupby("method"):
        assert len(points) == len(held) == int(result.scores.set_index("method").loc[method, "n_test"])
        expected = table["acc"].to_numpy()[points["row"].to_numpy() - 1]
        np.testing.assert_allclose(points["observed"], expected, rtol=1e-12)  # metric units, not 1 - acc
        assert (points["lower"] <= points["upper"]).all()
        mae = np.mean(np.abs(points["predicted"] - points["observed"]))
        assert result.scores.set_index("method").loc[method, "mae"] == pytest.approx(mae, rel=1e-12)
    assert result.links["two_step:chinchilla"] == "sigmoid"


def test_a_metric_that_is_its_loss_gives_a_tie_not_a_winner():
    """The metric equals the loss, so the direct law and the two-step law (power link, exponent 1) predict
    the same held-out points: the recommendation says they tie instead of naming a winner by rounding."""
    from scalinglab.fit.backtest import backtest_via
    from scalinglab.testing import chinchilla_loss

    rng = np.random.default_rng(1)
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 3e9, 5), np.geomspace(2e8, 2e11, 4)))
    loss = chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.003, n.size))
    table = pd.DataFrame({"run_id": np.arange(n.size), "n_params": n, "dataset_size": d, "loss": loss, "m": loss})
    result = backtest_via(
        table, ("n", "d"), "loss", "n_params>1e9", ["chinchilla"], {"y": "m"}, link="power", bootstrap=0
    )
    mae = result.scores.set_index("method")["mae"]
    assert mae["direct:chinchilla"] == pytest.approx(mae["two_step:chinchilla"], rel=1e-3)
    assert result.recommendation.startswith("a tie: "), result.recommendation
