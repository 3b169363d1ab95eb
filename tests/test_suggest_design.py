"""`suggest`'s design criterion: the rank-one update, the linearised variance and the decision's gradient
against a direct inverse, the full Fisher matrix of the augmented design and the closed form of N_opt."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from scalinglab import ScalingLaw
from scalinglab.fit.forms.two_var import CHINCHILLA
from scalinglab.observations import select_fit_data
from scalinglab.optimal.suggest import (
    _Decision,
    added_point_variance,
    copy_chances,
    mixture_width_ratio,
    variance_ratios,
)
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss


@pytest.fixture(scope="module")
def law():
    """A law fitted to a noiseless seed-sized grid, and the grid's log inputs."""
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 6.4e8, 6), np.geomspace(2e9, 1.4e10, 4)))
    frame = pd.DataFrame({"run_id": range(n.size), "n_params": n, "dataset_size": d, "value": chinchilla_loss(n, d)})
    return ScalingLaw(intervals=None).fit(select_fit_data(frame, ("n", "d"), None, n_params=5)), np.log([n, d])


def test_the_rank_one_update_equals_the_direct_inverse():
    rng = np.random.default_rng(0)
    b, c, p = 3, 4, 5
    roots = rng.normal(size=(b, p, p))
    cov = roots @ roots.transpose(0, 2, 1) + 0.1 * np.eye(p)
    grad, jac, noise_var = rng.normal(size=(b, p)), rng.normal(size=(b, c, p)), 0.3
    fast = added_point_variance(cov, grad, jac, noise_var)
    for i in range(b):
        for k in range(c):
            info = np.linalg.inv(cov[i]) + np.outer(jac[i, k], jac[i, k]) / noise_var
            assert fast[i, k] == pytest.approx(grad[i] @ np.linalg.solve(info, grad[i]), rel=1e-9)


def log10_n_opt_gradient(theta: np.ndarray, budget: float, k: float = 6.0) -> np.ndarray:
    """d log10 N_opt / d (log E, log A, log B, alpha, beta), differentiated by hand from
    log N_opt = (log(alpha A) - log(beta B)) / (alpha + beta) + beta / (alpha + beta) log(C / k)."""
    _, la, lb, alpha, beta = theta
    s, log_ratio, log_c = alpha + beta, np.log(alpha) + la - np.log(beta) - lb, np.log(budget / k)
    d_alpha = 1 / (alpha * s) - log_ratio / s**2 - beta * log_c / s**2
    d_beta = -1 / (beta * s) - log_ratio / s**2 + alpha * log_c / s**2
    return np.array([0.0, 1 / s, -1 / s, d_alpha, d_beta]) / np.log(10)


def test_the_decision_gradient_is_the_closed_form_one(law):
    theta = CHINCHILLA.from_public(TRUE_PARAMS)
    numeric = _Decision(law[0], 1e21, None, 6.0).gradient(theta[None, :])[0]
    np.testing.assert_allclose(numeric, log10_n_opt_gradient(theta, 1e21), rtol=1e-7, atol=1e-10)


def test_the_linearised_variance_is_the_delta_method_one_of_the_augmented_fisher_matrix(law):
    fitted, lx = law
    decision = _Decision(fitted, 1e21, None, 6.0)
    base = CHINCHILLA.from_public(TRUE_PARAMS)
    draws = base + np.array([[0, 0, 0, 0, 0], [0.01, 0.2, -0.1, 0.01, -0.02], [-0.02, -0.3, 0.2, -0.01, 0.01]])
    candidates = np.array([[2.56e9, 1.25e8], [1e8, 5e10], [3e7, 1e9]])
    sigma, noise = 0.01, 0.02

    def jacobian(theta, log_x):  # central differences of the log prediction, independent of the form's own
        out = np.empty((log_x.shape[1], 5))
        for p in range(5):
            step = np.zeros(5)
            step[p] = 1e-6
            up = CHINCHILLA.log_predict((theta + step)[None], log_x)[0]
            out[:, p] = (up - CHINCHILLA.log_predict((theta - step)[None], log_x)[0]) / 2e-6
        return out

    expected = np.zeros(len(candidates))
    for theta in draws:
        jac, grad = jacobian(theta, lx), log10_n_opt_gradient(theta, 1e21)
        before = grad @ np.linalg.solve(jac.T @ jac / sigma**2, grad)
        for c, (n, d) in enumerate(candidates):
            j = jacobian(theta, np.log([[n], [d]]))[0]
            after = grad @ np.linalg.solve(jac.T @ jac / sigma**2 + np.outer(j, j) / noise**2, grad)
            expected[c] += after / before / len(draws)
    ratio, used = variance_ratios(CHINCHILLA, draws, lx, candidates, decision, sigma, noise)
    assert used == len(draws)
    np.testing.assert_allclose(ratio, expected, rtol=1e-5)
    assert np.all((ratio > 0) & (ratio < 1))


def test_the_ratio_depends_on_the_noise_only_through_its_ratio_to_the_fit_s(law):
    fitted, lx = law
    decision = _Decision(fitted, None, (1e9, 1e11), 6.0)
    draws = CHINCHILLA.from_public(TRUE_PARAMS)[None, :]
    candidates = np.array([[1e9, 1e11], [2e7, 2e9]])
    small = variance_ratios(CHINCHILLA, draws, lx, candidates, decision, 0.01, 0.01)[0]
    large = variance_ratios(CHINCHILLA, draws, lx, candidates, decision, 0.1, 0.1)[0]
    np.testing.assert_allclose(small, large, rtol=1e-9)
    assert small[0] < small[1]  # a run at the target itself informs its prediction more than a small one
    useless = variance_ratios(CHINCHILLA, draws, lx, candidates, decision, 0.01, 1e6)[0]
    np.testing.assert_allclose(useless, 1.0, atol=1e-9)  # a run with huge noise adds nothing


def test_the_new_run_is_drawn_as_a_binomial_count():
    copies, chance = copy_chances(24)
    assert copies.tolist() == [0, 1, 2, 3, 4, 5] and chance.sum() == pytest.approx(1.0)
    brute = [math.comb(25, m) * (1 / 25) ** m * (24 / 25) ** (25 - m) for m in copies]
    np.testing.assert_allclose(chance, np.array(brute) / sum(brute), rtol=1e-12)
    assert chance[0] == pytest.approx((24 / 25) ** 25 / sum(brute))  # about 36% of replicas lack the new run


def test_the_mixture_width_solves_its_coverage_equation():
    ratios = np.array([[1.0, 0.25, 0.5], [1.0, 0.25, 0.1], [1.0, 0.25, 0.05]])
    chance = np.array([0.4, 0.4, 0.2])
    out = mixture_width_ratio(ratios, chance, 0.95)
    assert out[0] == pytest.approx(1.0, rel=1e-9) and out[1] == pytest.approx(0.5, rel=1e-9)  # one normal
    q = out[2] * norm.ppf(0.975)
    coverage = sum(p * (2 * norm.cdf(q / np.sqrt(r)) - 1) for p, r in zip(chance, ratios[:, 2], strict=True))
    assert coverage == pytest.approx(0.95, abs=1e-9)
    assert np.sqrt(0.05) < out[2] < np.sqrt(0.5)
    assert np.isnan(mixture_width_ratio(np.array([[np.nan], [1.0]]), np.array([0.5, 0.5]), 0.95)[0])
