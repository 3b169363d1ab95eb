import numpy as np
import pytest
from scipy.special import huber

from scalinglab.fit.loss import Loss


@pytest.mark.parametrize("delta", [1e-3, 0.1, 1.0])
def test_huber_matches_scipy_and_its_derivative(delta):
    r = np.linspace(-3 * delta, 3 * delta, 61)
    value, psi, weight = Loss("huber", delta).evaluate(r)
    np.testing.assert_allclose(value, huber(delta, r), rtol=1e-14, atol=1e-300)
    h = 1e-7 * delta
    numeric = (huber(delta, r + h) - huber(delta, r - h)) / (2 * h)
    np.testing.assert_allclose(psi, numeric, rtol=1e-6, atol=1e-9 * delta)
    nonzero = r != 0
    np.testing.assert_allclose(weight[nonzero], psi[nonzero] / r[nonzero], rtol=1e-12)


def test_mse_and_asymmetric():
    r = np.array([-0.5, -1e-4, 0.0, 1e-4, 0.5])
    np.testing.assert_allclose(Loss("mse").evaluate(r)[0], 0.5 * r**2)
    sym = Loss("huber", 1e-3).evaluate(r)[0]
    asym = Loss("asymmetric", 1e-3, over_weight=3.0).evaluate(r)[0]
    np.testing.assert_allclose(asym, np.where(r > 0, 3 * sym, sym))
    # an over-prediction costs more than an under-prediction of the same size
    assert asym[-1] > asym[0]


def test_bad_loss_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        Loss("l1")
    with pytest.raises(ValueError, match="delta"):
        Loss("huber", 0.0)
