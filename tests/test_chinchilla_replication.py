"""The Chinchilla refit protocol of Besiroglu et al. (2024) on the data they extracted from Hoffmann et al."""

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw

pytestmark = pytest.mark.slow

# Epoch AI's published estimates and 95% intervals (../shared/data/README.md).
PUBLISHED = {
    "E": (1.817, 1.769, 1.871),
    "A": (482.0, 285.2, 743.6),
    "B": (2085.4, 1042.4, 5810.3),
    "alpha": (0.348, 0.317, 0.373),
    "beta": (0.366, 0.331, 0.415),
}
PUBLISHED_SE = {"E": 0.026, "A": 124.5, "B": 1293.3, "alpha": 0.015, "beta": 0.021}
COLUMNS = {"n": "Model Size", "c": "Training FLOP", "y": "loss"}


@pytest.fixture(scope="module")
def chinchilla(chinchilla_csv):
    table = pd.read_csv(chinchilla_csv).sort_values("loss").iloc[:-5]  # drop the 5 highest-loss points
    law = ScalingLaw(form="chinchilla", delta=1e-3, bootstrap=300, seed=0)
    return law.fit(table, COLUMNS, d_from_flops=True, source=str(chinchilla_csv))


def test_objective_at_or_below_the_published_optimum(chinchilla):
    assert chinchilla.n_points_ == 240
    assert chinchilla.n_starts_ == 4500
    assert chinchilla.objective_ <= 1.0183e-3


def test_parameters_inside_published_intervals(chinchilla):
    for name, (_, lo, hi) in PUBLISHED.items():
        assert lo <= chinchilla.params_[name] <= hi, name


def test_hoffmann_published_values_are_not_an_optimum(chinchilla, chinchilla_csv):
    # The paper's values (E 1.69, A 406.4, B 410.7, alpha .34, beta .28) score worse than our fit.
    from scalinglab.fit.forms import get_form
    from scalinglab.fit.loss import Loss
    from scalinglab.fit.optimize import objective

    table = pd.read_csv(chinchilla_csv).sort_values("loss").iloc[:-5]
    n = table["Model Size"].to_numpy()
    lx = np.log(np.stack([n, table["Training FLOP"].to_numpy() / (6 * n)]))
    form = get_form("chinchilla")
    theta = form.from_public({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})
    paper = objective(form, theta, lx, np.log(table["loss"].to_numpy()), Loss("huber", 1e-3))[0]
    assert chinchilla.objective_ < paper


def test_bootstrap_errors_match_published_order(chinchilla):
    for name, published in PUBLISHED_SE.items():
        assert 0.5 * published <= chinchilla.se_[name] <= 2.0 * published, name
    lo, hi = chinchilla.ci_["alpha"]
    assert lo < chinchilla.params_["alpha"] < hi
