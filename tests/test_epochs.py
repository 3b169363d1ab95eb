"""A steps-aware law read as L(N, D) at a number of epochs: the published formula at S = epochs x D, the same
Jacobian, the profile's cost counting every pass, and `profile` / `cost --epochs` from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit.forms import get_form
from scalinglab.fit.forms.epochs import at_epochs
from scalinglab.fit.law import ScalingLaw
from scalinglab.optimal.iso_metric import iso_metric_profile
from scalinglab.testing import assert_jacobian_matches_central_differences
from test_data_constrained import TRUTH, curves, true_loss

N, D = np.geomspace(1e4, 1e6, 5), np.geomspace(1e3, 1e5, 5)


@pytest.fixture(scope="module")
def law() -> ScalingLaw:
    return ScalingLaw(form="data_constrained", intervals=None).fit(curves())


@pytest.mark.parametrize("epochs", [0.5, 1.0, 4.0, 40.0])
def test_reading_at_epochs_is_the_published_formula_at_s_equal_epochs_times_d(epochs):
    form = at_epochs(get_form("data_constrained"), epochs)
    theta = get_form("data_constrained").from_public(TRUTH)[None, :]
    predicted = np.exp(form.log_predict(theta, np.log(np.stack([N, D])))[0])
    np.testing.assert_allclose(predicted, true_loss(N, D, epochs * D), rtol=1e-12)
    assert form.inputs == ("n", "d") and form.param_names == get_form("data_constrained").param_names


@pytest.mark.parametrize("name", ["data_constrained", "data_constrained_full"])
def test_reading_keeps_an_exact_jacobian(name):
    form = at_epochs(get_form(name), 3.0)
    rng = np.random.default_rng(0)
    start = get_form(name).start_grid(None, None)
    theta = start[rng.choice(len(start), 4, replace=False)] + rng.normal(0, 0.05, (4, form.n_params))
    assert_jacobian_matches_central_differences(form, theta, np.log(np.stack([N, D])))


def test_only_a_law_in_samples_seen_has_epochs():
    with pytest.raises(UserError, match="no epochs to fix"):
        at_epochs(get_form("chinchilla"), 2.0)
    with pytest.raises(UserError, match="positive"):
        at_epochs(get_form("data_constrained"), 0.0)


def test_two_variable_at_epochs_predicts_as_the_full_law(law):
    reduced = law.two_variable(4.0)
    assert reduced.form_.inputs == ("n", "d") and reduced.reduced_from_ == "data_constrained"
    n, d = np.array([2e4, 3e5]), np.array([2e3, 1e4])
    np.testing.assert_allclose(reduced.predict(n=n, d=d), law.predict(n=n, d=d, seen=4 * d), rtol=1e-12)
    assert any("4 epoch(s)" in w for w in reduced.warnings_)
    with pytest.raises(UserError, match="save that law"):
        reduced.to_dict()


def test_profile_at_epochs_reaches_the_target_and_counts_every_pass(law):
    reduced = law.two_variable(4.0)
    p = iso_metric_profile(reduced, improvement=0.02, flops_per_param_sample=6.0)
    n, d = p.cheapest["n"], p.cheapest["d"]
    assert law.predict(n=n, d=d, seen=4 * d) == pytest.approx(p.target, rel=1e-8)
    assert p.cheapest["flops"] == pytest.approx(6.0 * n * 4 * d, rel=1e-12)
    # no pair on the curve is cheaper than the reported cheapest
    assert (p.curve["flops"] >= p.cheapest["flops"] * (1 - 1e-9)).all()


def test_cli_profile_and_cost_take_epochs(tmp_path, law):
    fit_file = tmp_path / "fit.json"
    law.save(fit_file)
    base = [sys.executable, "-m", "scalinglab"]
    out = subprocess.run(
        [*base, "profile", str(fit_file), "--improvement", "0.02", "--epochs", "4", "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    cheapest = json.loads(out.stdout)["cheapest"]
    expected = iso_metric_profile(law.two_variable(4.0), improvement=0.02).cheapest
    assert cheapest["n"] == pytest.approx(expected["n"], rel=1e-9)
    costs = subprocess.run(
        [*base, "cost", str(fit_file), "--improvements", "0.02", "--epochs", "4", "--json"],
        capture_output=True,
        text=True,
    )
    assert costs.returncode == 0, costs.stderr
    assert json.loads(costs.stdout)["costs"][0]["flops"] == pytest.approx(expected["flops"], rel=1e-9)
    bad = subprocess.run([*base, "profile", str(fit_file), "--epochs", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --epochs must be a positive number, got -1"


def test_cli_epochs_on_a_law_without_samples_seen_is_an_error(tmp_path):
    fit_file = tmp_path / "fit.json"
    table = curves()
    ScalingLaw(form="chinchilla", intervals=None).fit(table[table["steps"] == 1]).save(fit_file)
    bad = subprocess.run(
        [sys.executable, "-m", "scalinglab", "cost", str(fit_file), "--epochs", "2"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "does not depend on samples seen" in bad.stderr
