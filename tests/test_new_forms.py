"""farseer, chinchilla_nbeta and data_constrained_full: exact derivatives, their reductions to simpler laws,
parameters recovered from noiseless synthetic data by the default start grids, and the profile / cost path."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab import ScalingLaw
from scalinglab.fit.forms import get_form
from scalinglab.observations import FitData
from scalinglab.optimal.iso_metric import cost_table, iso_metric_profile
from scalinglab.testing import assert_jacobian_matches_central_differences

# Farseer-shaped laws (the published form; values chosen to look like LM losses, not the paper's fit). At LM
# scale the floor falls towards exp(S) (q < 0) and the data exponent grows from 0.30 to 0.36 over N = 1e7..1e10;
# at small scale the floor keeps falling (q > 0) and the exponent shrinks with N (a < 0).
FARSEER_LM = {"s": 7.0, "q": -0.18, "S": 0.53, "B": 0.0187, "b": 0.2, "Q": 5.73, "A": 0.0365, "a": 0.1, "E": -1.387}
FARSEER_SMALL = {"s": -0.078, "q": 0.15, "S": 1.41, "B": 12.1, "b": -0.15, "Q": 1.97, "A": 2.34, "a": -0.2, "E": -1.42}
NBETA = {"E": 1.8, "A": 450.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37 * 1e9**-0.03, "gamma": 0.03}
# Muennighoff et al.'s R_D* = 15.4 and R_N* = 5.3 on a chinchilla with alpha != beta, so both are identified.
FULL = {"E": 1.2, "A": 300.0, "B": 900.0, "alpha": 0.4, "beta": 0.5, "R_D_star": 15.4, "R_N_star": 5.3}


def _grid(*axes):
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh])


LM_GRID = _grid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8))
SMALL_GRID = _grid(np.geomspace(1e4, 1e6, 8), np.geomspace(1e5, 1e8, 8))


def _checkpoints():
    """4 model sizes x 3 unique-data sizes, each with checkpoints from a quarter epoch to 32 epochs. The
    compute-optimal N for the unique data (6.6e4, 1.2e6, 2.1e7) lies inside the model sizes: some runs have
    no excess parameters, others up to 150 times too many."""
    rows = [(n, u, u * e) for n in (1e4, 1e5, 1e6, 1e7) for u in (1e5, 1e6, 1e7) for e in 2.0 ** np.arange(-2, 6)]
    return np.array(rows).T


def _law(name, truth, inputs):
    form = get_form(name)
    y = np.exp(form.log_predict(form.from_public(truth)[None, :], np.log(inputs))[0])
    data = FitData(inputs=inputs, input_names=form.inputs, y=y, groups=None, source="synthetic")
    return ScalingLaw(form=name, intervals=None).fit(data)


@pytest.mark.parametrize(
    ("name", "truth", "inputs"),
    [
        ("farseer", FARSEER_LM, LM_GRID),
        ("farseer", FARSEER_SMALL, SMALL_GRID),
        ("chinchilla_nbeta", NBETA, LM_GRID),
        ("data_constrained_full", FULL, _checkpoints()),
    ],
)
def test_jacobian_matches_central_differences(name, truth, inputs):
    form = get_form(name)
    lx = np.log(inputs)
    rng = np.random.default_rng(3)
    theta = form.from_public(truth)[None, :] + rng.normal(0, 0.05, (6, form.n_params))
    assert_jacobian_matches_central_differences(form, theta, lx)


# ---- farseer ---------------------------------------------------------------------------------------


def test_farseer_with_a_constant_data_exponent_is_a_two_term_law():
    form = get_form("farseer")
    n, d = LM_GRID
    p = dict(FARSEER_LM)
    # A = 0: the data exponent is exp(E) at every N
    theta = form.from_public({**p, "A": 0.0})
    closed = np.exp(p["s"] * n ** p["q"] + p["S"]) + np.exp(p["B"] * n ** p["b"] + p["Q"]) * d ** -np.exp(p["E"])
    np.testing.assert_allclose(np.exp(form.log_predict(theta[None], np.log(LM_GRID))[0]), closed, rtol=1e-12)
    # A hugely negative: the exponent is exp(-huge) = 0, the data term a constant in D
    theta = form.from_public({**p, "A": -1e3})
    closed = np.exp(p["s"] * n ** p["q"] + p["S"]) + np.exp(p["B"] * n ** p["b"] + p["Q"])
    np.testing.assert_allclose(np.exp(form.log_predict(theta[None], np.log(LM_GRID))[0]), closed, rtol=1e-12)


@pytest.mark.parametrize(("truth", "inputs"), [(FARSEER_LM, LM_GRID), (FARSEER_SMALL, SMALL_GRID)])
def test_farseer_recovers_all_nine_parameters(truth, inputs):
    # Noiseless data on 8 x 8 grids over 3 decades of N: the default start grid reaches the exact optimum
    # (objective ~1e-30), so every parameter comes back to rounding, although J^T J is poorly conditioned
    # (the stretched exponentials' coefficients trade off against their exponents).
    law = _law("farseer", truth, inputs)
    assert law.objective_ < 1e-20
    for name, value in truth.items():
        assert law.params_[name] == pytest.approx(value, rel=1e-3), name


# ---- chinchilla_nbeta ------------------------------------------------------------------------------


def test_nbeta_with_gamma_zero_is_chinchilla():
    chinchilla = get_form("chinchilla")
    base = {"E": 1.8, "A": 450.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
    nbeta = get_form("chinchilla_nbeta").from_public({**base, "gamma": 0.0})
    lx = np.log(LM_GRID)
    expected = chinchilla.log_predict(chinchilla.from_public(base)[None], lx)
    np.testing.assert_allclose(get_form("chinchilla_nbeta").log_predict(nbeta[None], lx), expected, rtol=1e-13)


def test_nbeta_recovers_its_parameters():
    law = _law("chinchilla_nbeta", NBETA, LM_GRID)
    for name, value in NBETA.items():
        assert law.params_[name] == pytest.approx(value, rel=1e-3), name
    assert law.derived("beta * 1e9**gamma")["value"] == pytest.approx(0.37, rel=1e-3)  # the exponent at N = 1e9


# ---- data_constrained_full -------------------------------------------------------------------------


def test_full_law_matches_the_published_code():
    # The paper's fit and its two Figure 1 (right) models, from the datablations README's `scaling_law`:
    # 6.34e9 parameters on 242e9 tokens of 25e9 unique ones, and 8.67e9 on 178e9.
    form = get_form("data_constrained_full")
    alpha = 0.3526596
    published = {"E": np.exp(0.6254804), "A": np.exp(6.255414), "B": np.exp(7.3049974), "alpha": alpha,
                 "beta": alpha, "R_D_star": 15.387756, "R_N_star": 5.309743}  # fmt: skip
    lx = np.log(np.array([[6.34e9, 8.67e9], [25e9, 25e9], [242e9, 178e9]]))
    predicted = np.exp(form.log_predict(form.from_public(published)[None], lx)[0])
    np.testing.assert_allclose(predicted, [2.2256440889984477, 2.2269634075087867], rtol=1e-12)


def test_full_law_without_excess_parameters_is_data_constrained():
    # N far below the compute-optimal size of its unique data: N' = N, and only D' remains.
    full, plain = get_form("data_constrained_full"), get_form("data_constrained")
    unique = np.array([1e6, 1e7, 1e7, 1e8])
    lx = np.log(np.stack([np.array([1e3, 1e4, 3e4, 1e5]), unique, unique * np.array([0.5, 1.0, 7.0, 40.0])]))
    theta = full.from_public(FULL)
    np.testing.assert_allclose(full.log_predict(theta[None], lx), plain.log_predict(theta[None, :6], lx), rtol=1e-14)
    # ... and a model beyond it is worth less than its N (for the same data)
    lx_big = lx.copy()
    lx_big[0] += np.log(1e4)
    assert np.all(full.log_predict(theta[None], lx_big) > plain.log_predict(theta[None, :6], lx_big))


def test_full_law_recovers_all_seven_parameters():
    law = _law("data_constrained_full", FULL, _checkpoints())
    for name, value in FULL.items():
        assert law.params_[name] == pytest.approx(value, rel=1e-3), name


# ---- the profile and cost path ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "truth"), [("farseer", FARSEER_LM), ("chinchilla_nbeta", NBETA)])
def test_profile_and_cost_work_for_laws_in_n_and_d(name, truth):
    # iso_metric solves L(N, D) = target for D by bisection on the law's own prediction: any form in N and D
    # whose loss falls with D works. Started at the truth, to keep the test fast.
    form = get_form(name)
    y = np.exp(form.log_predict(form.from_public(truth)[None], np.log(LM_GRID))[0])
    data = FitData(inputs=LM_GRID, input_names=("n", "d"), y=y, groups=None, source="synthetic")
    law = ScalingLaw(form=name, intervals=None, starts=form.from_public(truth)[None]).fit(data)
    profile = iso_metric_profile(law, improvement=0.01)
    with pytest.warns(UserWarning, match="far extrapolation"):  # the profile spans 1e4 times the fitted N
        reached = law.predict(n=profile.curve["n_params"].to_numpy(), d=profile.curve["dataset_size"].to_numpy())
    np.testing.assert_allclose(reached, profile.target, rtol=1e-6)
    assert profile.cheapest["flops"] <= profile.curve["flops"].min() * (1 + 1e-9)
    table = cost_table(law, (0.01, 0.02, 0.05))
    assert (table["note"] == "").all()
    assert np.all(np.diff(table["flops_multiple"]) > 0)
