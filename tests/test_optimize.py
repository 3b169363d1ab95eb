"""The batched optimiser and its compiled kernel, against independent references."""

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

from scalinglab.fit import kernels
from scalinglab.fit.forms import get_form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import evaluator, minimize, objective


def _problem(form_name, n=40, seed=0):
    form = get_form(form_name)
    rng = np.random.default_rng(seed)
    lx = np.log(rng.uniform(1e6, 1e11, size=(len(form.inputs), n)))
    ly = np.log(rng.uniform(1.5, 3.0, n))
    return form, lx, ly


@pytest.mark.skipif(kernels.numba is None, reason="numba is not installed")
@pytest.mark.parametrize("form_name", ["chinchilla", "power", "power_offset"])
@pytest.mark.parametrize("kind", ["huber", "mse", "asymmetric"])
def test_compiled_kernel_equals_numpy(form_name, kind):
    form, lx, ly = _problem(form_name)
    loss = Loss(kind, 0.05, 2.5)
    theta = form.start_grid(lx, ly)[:50]
    weights = np.random.default_rng(1).integers(0, 3, size=(len(theta), ly.size)).astype(float)
    for w in (np.ones_like(ly), weights):
        fast = evaluator(form, lx, ly, loss)(theta, w)
        slow = evaluator(form, lx, ly, loss, compiled=False)(theta, w)
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form_name", ["chinchilla", "kaplan", "power_offset", "bnsl1"])
def test_gradient_matches_differences_of_the_objective(form_name):
    form, lx, ly = _problem(form_name)
    loss = Loss("huber", 0.05)
    theta = form.start_grid(lx, ly)[::7][:4] + 0.01
    grad = evaluator(form, lx, ly, loss)(theta, np.ones_like(ly))[1]
    h = 1e-6
    for k in range(form.n_params):
        up, down = theta.copy(), theta.copy()
        up[:, k] += h
        down[:, k] -= h
        numeric = (objective(form, up, lx, ly, loss) - objective(form, down, lx, ly, loss)) / (2 * h)
        np.testing.assert_allclose(grad[:, k], numeric, rtol=1e-4, atol=1e-6)


def test_batched_solutions_match_scipy_per_start():
    # Each problem of the batch ends where scipy's L-BFGS-B, run tightly on that problem alone, ends.
    form, lx, ly = _problem("chinchilla", n=60, seed=3)
    loss = Loss("huber", 1e-2)
    starts = np.array([[0.5, 5.0, 5.0, 0.3, 0.3], [0.0, 10.0, 10.0, 0.5, 0.5], [0.8, 3.0, 8.0, 0.2, 0.4]])
    ours = minimize(form, lx, ly, starts, loss, max_iter=5000, ftol=1e-15)
    for start, value in zip(starts, ours.objective, strict=True):
        ref = scipy_minimize(
            lambda t: objective(form, t, lx, ly, loss)[0],
            start,
            method="L-BFGS-B",
            bounds=list(zip(form.lower, form.upper, strict=True)),
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000},
        )
        assert value <= ref.fun * (1 + 1e-7)


def test_per_problem_weights_are_independent_problems():
    form, lx, ly = _problem("power", n=30)
    theta0 = np.zeros((2, 2))
    weights = np.ones((2, ly.size))
    weights[1, :10] = 0.0  # the second problem ignores the first 10 points
    both = minimize(form, lx, ly, theta0, Loss("mse"), weights, max_iter=200)
    alone = minimize(form, lx[:, 10:], ly[10:], theta0[:1], Loss("mse"), max_iter=200)
    np.testing.assert_allclose(both.theta[1], alone.theta[0], rtol=1e-8)
    # mse on a linear model: the closed-form least-squares solution
    design = np.stack([np.ones(ly.size), -lx[0]], axis=1)
    np.testing.assert_allclose(both.theta[0], np.linalg.lstsq(design, ly, rcond=None)[0], rtol=1e-8)


def test_fits_from_several_threads_take_turns_in_the_compiled_kernel():
    # numba's workqueue threading layer aborts the whole process when two threads launch parallel work at
    # once; the kernel's lock makes fits from a thread pool safe (in a subprocess, so an abort fails the test).
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from scalinglab.testing import example_observations\n"
        "from scalinglab.fit.law import ScalingLaw\n"
        "obs = example_observations()\n"
        "fit = lambda i: ScalingLaw(intervals=None).fit(obs).params_['alpha']\n"
        "with ThreadPoolExecutor(3) as pool:\n"
        "    values = list(pool.map(fit, range(3)))\n"
        "print(len(set(values)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "1"  # the same data give the same fit in every thread
