"""ScalingLaw: intervals, determinism, run-level resampling, metric direction, persistence, warnings."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw, UserError
from scalinglab.fit.bootstrap import resample_weights
from scalinglab.fit.diagnostics import check_bounds
from scalinglab.fit.law import MAX_EXTRAPOLATION_DECADES
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import objective as opt_objective
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss, example_observations


@pytest.fixture(scope="module")
def fitted():
    return ScalingLaw(bootstrap=200, seed=3, intervals="bootstrap").fit(example_observations())


def test_intervals_cover_the_truth_and_the_estimate(fitted):
    for name, truth in TRUE_PARAMS.items():
        lo, hi = fitted.ci_[name]
        assert lo <= fitted.params_[name] <= hi
        assert lo <= truth <= hi, name


def test_bootstrap_is_deterministic_by_seed():
    obs = example_observations()
    a = ScalingLaw(bootstrap=20, seed=1).fit(obs).bootstrap_params_
    b = ScalingLaw(bootstrap=20, seed=1).fit(obs).bootstrap_params_
    c = ScalingLaw(bootstrap=20, seed=2).fit(obs).bootstrap_params_
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_resampling_whole_runs_keeps_their_points_together():
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    weights = resample_weights(6, 50, seed=0, groups=groups)
    assert np.all(weights[:, 0] == weights[:, 1]) and np.all(weights[:, 1] == weights[:, 2])
    assert np.all(weights[:, 3] == weights[:, 4])
    np.testing.assert_array_equal(weights[:, [0, 3, 5]].sum(axis=1), 3)  # three runs drawn each time
    np.testing.assert_array_equal(resample_weights(6, 50, seed=0).sum(axis=1), 6)


def test_predict_matches_the_law_and_intervals_bracket_it(fitted):
    n, d = np.array([1e8, 1e9]), np.array([1e10, 1e11])
    point, lo, hi = fitted.predict(n=n, d=d, return_ci=True)
    p = fitted.params_
    np.testing.assert_allclose(point, p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"], rtol=1e-12)
    assert np.all(lo <= point) and np.all(point <= hi)
    np.testing.assert_allclose(point, chinchilla_loss(n, d), rtol=0.02)


def test_derived_quantity_with_interval(fitted):
    out = fitted.derived("beta / (alpha + beta)")
    p = fitted.params_
    assert out["value"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    assert out["lower"] <= out["value"] <= out["upper"]
    with pytest.raises(UserError, match="unknown name 'gamma'"):
        fitted.derived("gamma + 1")
    with pytest.raises(UserError, match="not allowed"):
        fitted.derived("__import__('os')")


def test_far_extrapolation_warns(fitted):
    with pytest.warns(UserWarning, match="far extrapolation"):
        fitted.predict(n=1e14, d=1e11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(n=1e9, d=1e10)


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "fit.json"
    fitted.save(path)
    loaded = ScalingLaw.load(path)
    assert loaded.params_ == fitted.params_
    assert loaded.ci_ == fitted.ci_
    np.testing.assert_array_equal(loaded.predict(n=1e9, d=1e10), fitted.predict(n=1e9, d=1e10))
    data = json.loads(path.read_text())
    assert set(data["params"]) == {"E", "A", "B", "alpha", "beta"}
    (tmp_path / "bad.json").write_text(json.dumps({"form": "chinchilla"}))
    with pytest.raises(UserError, match="bad.json: not a scalinglab fit"):
        ScalingLaw.load(tmp_path / "bad.json")


def test_higher_is_better_metric_predicts_in_its_own_units():
    obs = example_observations()
    obs["value"] = 1.0 - obs["value"] / 10  # a mAP-like metric: error = loss / 10
    law = ScalingLaw(higher_is_better=True, ceiling=1.0).fit(obs)
    assert law.params_["alpha"] == pytest.approx(TRUE_PARAMS["alpha"], abs=0.05)
    n, d = 1e9, 1e11
    assert law.predict(n=n, d=d) == pytest.approx(1.0 - chinchilla_loss(n, d) / 10, rel=0.005)


def test_unidentified_floor_is_flagged():
    # A pure power law in N and D has no floor: E runs to its lower bound.
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6))
    frame = pd.DataFrame({"n_params": n.ravel(), "dataset_size": d.ravel()})
    frame["value"] = 300 / frame["n_params"] ** 0.3 + 900 / frame["dataset_size"] ** 0.3
    law = ScalingLaw().fit(frame)
    assert any("E is at its lower bound" in w for w in law.warnings_)
    assert any("poorly identified" in w for w in law.warnings_)


def test_residuals_past_the_huber_threshold_do_not_read_as_unidentified():
    """Two seeds per cell, 2% either side of a pure power law: every log residual is past delta = 1e-3, where
    Huber's curvature is zero, so the objective's Hessian is singular. The design still pins the law down
    (J^T J is well conditioned), and no 'poorly identified' warning is raised."""
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6)))
    truth = 300 / n**0.3 + 900 / d**0.3
    frame = pd.DataFrame(
        {"n_params": np.tile(n, 2), "dataset_size": np.tile(d, 2), "value": np.concatenate([truth, truth])}
    )
    frame["value"] *= np.exp(np.repeat([0.02, -0.02], n.size))
    law = ScalingLaw(form="chinchilla_no_floor_shared", intervals=None).fit(frame)
    residual = np.log(law.predict(n=frame["n_params"], d=frame["dataset_size"]) / frame["value"])
    assert np.all(np.abs(residual) > 1e-3)
    eigenvalues = np.linalg.eigvalsh(law.hessian_)
    assert eigenvalues[0] <= 1e-9 * eigenvalues[-1]  # the robust loss's own curvature says nothing here
    assert not any("identified" in w or "flat" in w for w in law.warnings_), law.warnings_


def test_bound_decision_does_not_depend_on_where_the_optimiser_stopped():
    # The same flat-floor data, judged from end points the optimiser could have crawled to on any CPU.
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6))
    frame = pd.DataFrame({"n_params": n.ravel(), "dataset_size": d.ravel()})
    frame["value"] = 300 / frame["n_params"] ** 0.3 + 900 / frame["dataset_size"] ** 0.3
    law = ScalingLaw().fit(frame)
    form, loss = law.form_, Loss("huber", 1e-3)
    lx = np.log(frame[["n_params", "dataset_size"]].to_numpy().T)
    ly = np.log(frame["value"].to_numpy())
    decisions = []
    for e_internal in (-30.0, -29.99976, -29.9, -28.0):
        theta = law.theta_.copy()
        theta[0] = e_internal
        objective = float(opt_objective(form, theta, lx, ly, loss)[0])
        decisions.append(check_bounds(form, theta, objective, lx, ly, loss).active)
    assert all(active == [(0, "lower")] for active in decisions), decisions
    assert law.params_["E"] == np.exp(-30.0)  # the pinned refit is adopted: E sits exactly on its bound


def test_interior_parameters_near_a_bound_are_not_flagged():
    # A real floor that is small next to the data's range: E = 0.05 is interior, only alpha/beta matter here.
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6))
    frame = pd.DataFrame({"n_params": n.ravel(), "dataset_size": d.ravel()})
    frame["value"] = 1.5 + 300 / frame["n_params"] ** 0.05 + 900 / frame["dataset_size"] ** 0.3
    law = ScalingLaw().fit(frame)
    assert law.at_bounds_ == []
    assert not any("bound" in w for w in law.warnings_)


def test_a_saved_fit_with_non_finite_numbers_is_refused_naming_the_key(fitted, tmp_path):
    path = tmp_path / "fit.json"
    fitted.save(path)
    for edit, key in (
        (lambda d: d["params"].update(alpha=float("nan")), "'params.alpha'"),
        (lambda d: d["theta"].__setitem__(0, float("inf")), "'theta[0]'"),
        (lambda d: d["domain"]["n"].__setitem__(1, float("nan")), "'domain.n[1]'"),
        (lambda d: d.update(ceiling=float("-inf")), "'ceiling'"),
    ):
        data = json.loads(path.read_text())
        edit(data)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data))
        with pytest.raises(UserError, match=f"bad.json: key {re.escape(key)} is .*not a finite number"):
            ScalingLaw.load(bad)
    data = json.loads(path.read_text())
    data["ci_level"] = 1.5
    with pytest.raises(UserError, match="ci_level must be between 0 and 1"):
        ScalingLaw.from_dict(data, source="x.json")
    data = json.loads(path.read_text())
    data["form"] = "nope"
    with pytest.raises(UserError, match="x.json: unknown form 'nope'"):
        ScalingLaw.from_dict(data, source="x.json")


def test_predictions_are_refused_far_beyond_the_data_or_when_not_finite(fitted):
    lo, hi = fitted.domain_["n"]
    with pytest.warns(UserWarning, match="far extrapolation"):
        fitted.predict(n=hi * 10**MAX_EXTRAPOLATION_DECADES / 2, d=1e10)  # just inside: a prediction
    with pytest.raises(UserError, match="n = 1e\\+308 lies 298 decades outside"):
        fitted.predict(n=1e308, d=1e10)
    with pytest.raises(UserError, match="d = 1e-300 lies"):
        fitted.predict(n=1e9, d=np.array([1e10, 1e-300]))
    with pytest.raises(UserError, match="n must be finite and > 0, got -1"):
        fitted.predict(n=-1.0, d=1e10)
    # A steep law overflows some decades below its data: A / N^200 at N = 0.01 is A * 1e400.
    data = fitted.to_dict()
    data["params"]["alpha"] = 200.0
    data["theta"] = fitted.form_.from_public(data["params"]).tolist()
    steep = ScalingLaw.from_dict(data)
    assert np.isfinite(steep.predict(n=1e8, d=1e10))
    with pytest.warns(UserWarning), pytest.raises(UserError, match="the prediction at n = 0.01, d = 1e"):
        steep.predict(n=0.01, d=1e10)


def test_bad_options_fail_before_fitting():
    obs = example_observations()
    for options, message in (
        ({"bootstrap": -5}, "bootstrap must be a whole number >= 0"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
        ({"ci_level": 1.0}, "ci_level must be between 0 and 1"),
        ({"loss": "l1"}, "unknown loss 'l1'"),
    ):
        with pytest.raises(UserError, match=message):
            ScalingLaw(**options).fit(obs)


def test_public_loss_and_metric_conversion():
    law = ScalingLaw(loss="mse", higher_is_better=True, ceiling=0.9)
    assert law.loss_function() == Loss("mse", 1e-3, 2.0)
    np.testing.assert_allclose(law.to_metric(np.array([0.1, 0.4])), [0.8, 0.5])
    assert ScalingLaw().to_metric(0.3) == 0.3
