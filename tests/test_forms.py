"""Forms: derivatives against independent references, and parameter recovery from known laws."""

import numpy as np
import pytest

from scalinglab import ScalingLaw
from scalinglab.fit.forms import FORMS, get_form
from scalinglab.fit.forms.base import complex_step_jacobian, logsumexp
from scalinglab.observations import FitData
from scalinglab.testing import assert_jacobian_matches_central_differences


def _lx(form, n=30, seed=0):
    rng = np.random.default_rng(seed)
    return np.log(rng.uniform(1e6, 1e11, size=(len(form.inputs), n)))


@pytest.mark.parametrize("name", list(FORMS))
def test_jacobian_matches_central_differences(name):
    form = get_form(name)
    lx = _lx(form)
    rng = np.random.default_rng(1)
    starts = form.start_grid(lx, np.log(rng.uniform(1, 3, lx.shape[1])))
    theta = starts[rng.choice(len(starts), 5, replace=False)] + rng.normal(0, 0.05, (5, form.n_params))
    assert_jacobian_matches_central_differences(form, theta, lx)


def test_complex_step_is_exact_for_a_closed_form():
    # d/dtheta log(exp(t0) + exp(t1 x)) is known in closed form.
    def f(theta, lx):
        return logsumexp(theta[..., :1] + 0 * lx[0], theta[..., 1:2] * lx[0])

    theta, lx = np.array([[0.3, -0.7]]), np.array([[0.5, 1.0, 2.0]])
    _, jac = complex_step_jacobian(f, theta, lx)
    p1 = np.exp(0.3) / (np.exp(0.3) + np.exp(-0.7 * lx[0]))
    np.testing.assert_allclose(jac[0, :, 0], p1, rtol=1e-15)
    np.testing.assert_allclose(jac[0, :, 1], (1 - p1) * lx[0], rtol=1e-14)


def test_logsumexp_is_stable():
    big = np.array([1000.0, -1000.0])
    np.testing.assert_allclose(logsumexp(big, big), big + np.log(2))


def _recover(form_name, truth, inputs, noise=0.003, seed=0):
    form = get_form(form_name)
    theta = form.from_public(truth)
    lx = np.log(inputs)
    rng = np.random.default_rng(seed)
    y = np.exp(form.log_predict(theta[None, :], lx)[0] + rng.normal(0, noise, lx.shape[1]))
    data = FitData(inputs=inputs, input_names=form.inputs, y=y, groups=None, source="synthetic")
    return ScalingLaw(form=form_name).fit(data), theta, lx


def _grid(*axes):
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh])


def test_recovers_chinchilla():
    truth = {"E": 1.8, "A": 450.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
    law, _, _ = _recover("chinchilla", truth, _grid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e8, 1e12, 8)))
    assert law.params_["alpha"] == pytest.approx(0.35, abs=0.02)
    assert law.params_["beta"] == pytest.approx(0.37, abs=0.02)
    assert law.params_["E"] == pytest.approx(1.8, rel=0.03)


def test_recovers_kaplan():
    truth = {"Nc": 8.8e13, "Dc": 5.4e13, "alphaN": 0.076, "alphaD": 0.095}
    law, _, _ = _recover("kaplan", truth, _grid(np.geomspace(1e6, 1e10, 8), np.geomspace(1e7, 1e11, 8)), noise=0.001)
    assert law.params_["alphaN"] == pytest.approx(0.076, rel=0.1)
    assert law.params_["alphaD"] == pytest.approx(0.095, rel=0.1)


def test_recovers_power_laws():
    x = np.geomspace(1e15, 1e21, 25)[None, :]
    law, _, _ = _recover("power", {"A": 50.0, "alpha": 0.3}, x)
    assert law.params_["alpha"] == pytest.approx(0.3, abs=0.005)
    law, _, _ = _recover("power_offset", {"E": 1.5, "A": 3000.0, "alpha": 0.25}, x, noise=0.001)
    assert law.params_["alpha"] == pytest.approx(0.25, abs=0.03)
    assert law.params_["E"] == pytest.approx(1.5, rel=0.03)


def test_recovers_a_broken_power_law_break():
    truth = {"a": 0.05, "b": 5.0, "c0": 0.1, "c1": 0.5, "d1": 1e6, "f1": 0.3}
    x = np.geomspace(1e3, 1e9, 40)[None, :]
    law, _, _ = _recover("bnsl1", truth, x, noise=0.002)
    assert law.params_["d1"] == pytest.approx(1e6, rel=0.5)
    assert law.params_["c1"] == pytest.approx(0.5, abs=0.1)
    assert law.params_["c0"] == pytest.approx(0.1, abs=0.05)


@pytest.mark.slow
def test_two_break_law_fits_a_double_descent_bump():
    # c1 < 0 bends the curve up, c2 > 0 brings it back down: a bump between the breaks.
    truth = {"a": 0.1, "b": 2.0, "c0": 0.2, "c1": -0.6, "d1": 1e4, "f1": 0.2, "c2": 1.2, "d2": 1e6, "f2": 0.2}
    x = np.geomspace(1e2, 1e8, 50)[None, :]
    law, theta, lx = _recover("bnsl2", truth, x, noise=0.002)
    form = get_form("bnsl2")
    fitted = form.log_predict(law.theta_[None, :], lx)[0]
    true = form.log_predict(theta[None, :], lx)[0]
    assert np.sqrt(np.mean((fitted - true) ** 2)) < 0.01
    assert np.any(np.diff(true) > 0)  # the data do go up somewhere


def test_recovers_m3():
    truth = {"beta": 2.0, "c": 0.35, "gamma": 1e-7}
    law, _, _ = _recover("m3", truth, np.geomspace(1e3, 1e10, 30)[None, :], noise=0.001)
    assert law.params_["c"] == pytest.approx(0.35, abs=0.03)
    assert law.params_["gamma"] == pytest.approx(1e-7, rel=0.3)


def test_m4_compiled_solve_matches_numpy():
    # The compiled Newton solve (each point stops on its own) and the numpy one (all stop together) solve
    # the same monotone equation: they agree to rounding wherever it has a root.
    from scalinglab.fit.forms import saturating

    rng = np.random.default_rng(4)
    log_k = rng.normal(0.0, 5.0, size=(40, 25))
    alpha = rng.uniform(0.05, 5.0, size=(40, 1)) + 0 * log_k
    compiled = saturating._solve(log_k, alpha)
    reference = saturating._solve_numpy(log_k, alpha, 60)
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12)
    residual = -np.logaddexp(0, -compiled) + alpha * np.logaddexp(0, compiled) - log_k
    assert np.max(np.abs(residual)) < 1e-10
