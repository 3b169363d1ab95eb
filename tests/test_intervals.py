"""Profile-likelihood intervals: exact for linear least squares, finite where identified, open where not."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scalinglab import ScalingLaw
from scalinglab.fit.intervals import profile_intervals, robust_threshold
from scalinglab.fit.loss import Loss
from scalinglab.observations import FitData, select_fit_data
from scalinglab.testing import TRUE_PARAMS, example_observations


def _profile(law: ScalingLaw, frame: pd.DataFrame, level: float = 0.95):
    data = select_fit_data(frame, law.form_.inputs, None, n_params=law.form_.n_params)
    lx, ly = np.log(data.inputs), np.log(data.y)
    loss = law.loss_function()
    return profile_intervals(law.form_, law.theta_, law.objective_, lx, ly, loss, level, law.hessian_, data.groups)


def test_least_squares_power_law_gives_the_exact_t_interval():
    # log y = log A - alpha log x is linear regression: the F-calibrated profile interval is the t interval.
    rng = np.random.default_rng(1)
    x = np.geomspace(1e3, 1e8, 12)
    frame = pd.DataFrame({"flops": x, "value": 50 * x**-0.3 * np.exp(rng.normal(0, 0.05, x.size))})
    law = ScalingLaw(form="power", loss="mse").fit(frame)
    for level in (0.8, 0.95):
        ci = _profile(law, frame, level).ci["alpha"]
        fit = stats.linregress(np.log(x), np.log(frame["value"]))
        half = stats.t.ppf(0.5 + level / 2, x.size - 2) * fit.stderr
        np.testing.assert_allclose(ci, (-fit.slope - half, -fit.slope + half), rtol=1e-6)


def test_mse_threshold_is_the_classical_one():
    r = np.random.default_rng(0).normal(0, 0.1, 30)
    expected = 0.5 * stats.f.ppf(0.95, 1, 27) * np.sum(r**2) / 27
    assert robust_threshold(r, Loss("mse"), 3, 0.95) == pytest.approx(expected, rel=1e-12)


def test_identified_law_has_finite_intervals_like_the_bootstrap():
    obs = example_observations()
    law = ScalingLaw(bootstrap=200, seed=3).fit(obs)
    assert law.ci_ == law.profile_ci_ and law.not_identified_ == []
    for name in TRUE_PARAMS:
        lo, hi = law.ci_[name]
        assert lo < law.params_[name] < hi
        boot_lo, boot_hi = law.bootstrap_ci_[name]
        assert 0.5 < (hi - lo) / (boot_hi - boot_lo) < 2.0, name  # two methods, the same order of width


def test_checkpoints_of_one_run_widen_the_interval():
    # Three copies of each point under one run id carry no more information than one point.
    data = select_fit_data(example_observations(), ("n", "d"), None, n_params=5)
    once = ScalingLaw().fit(data)
    tripled = FitData(np.tile(data.inputs, 3), data.input_names, np.tile(data.y, 3), np.tile(data.groups, 3), "x3")
    naive = FitData(tripled.inputs, tripled.input_names, tripled.y, None, "x3")
    thrice, independent = ScalingLaw().fit(tripled), ScalingLaw().fit(naive)
    for name in ("alpha", "beta"):
        width_once = np.subtract(*once.ci_[name][::-1])
        # Equal but for the small-sample terms (n - p degrees of freedom, the kernel's bandwidth); ignoring
        # the runs would shrink the width by about 1 / sqrt(3).
        assert np.subtract(*thrice.ci_[name][::-1]) > 0.8 * width_once, name
        assert np.subtract(*independent.ci_[name][::-1]) < 0.7 * width_once, name


def test_a_missing_floor_is_reported_open_not_as_digits():
    rng = np.random.default_rng(1)
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6))
    frame = pd.DataFrame({"n_params": n.ravel(), "dataset_size": d.ravel()})
    frame["value"] = (300 / frame["n_params"] ** 0.3 + 900 / frame["dataset_size"] ** 0.3) * np.exp(
        rng.normal(0, 0.01, 36)
    )
    law = ScalingLaw().fit(frame)
    profile = _profile(law, frame)
    assert profile.not_identified == ["E"] == law.not_identified_
    assert any(w.startswith("E is not identified") for w in law.warnings_)
    lower, upper = profile.ci["E"]
    assert lower is None and 0 < upper < 1  # E is bounded above only
    assert all(None not in profile.ci[name] for name in ("A", "B", "alpha", "beta"))
