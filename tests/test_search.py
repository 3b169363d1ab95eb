"""`FormSearch`, the one form selector: the generating form is found, its learned state is the candidate's own
fit with the estimator's intervals, and scoring "largest" ranks by RMSLE on the largest scales."""

import numpy as np
import pytest

from scalinglab import FormSearch, ScalingLaw, UserError, fit_law
from scalinglab.fit.backtest import backtest, holdout_mask
from scalinglab.fit.selection import select_form
from scalinglab.observations import FitData

N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 3.2e7, 6), np.geomspace(1e8, 7e8, 4)))
TRUTH = 400 / N**0.35 + 4e3 / D**0.35  # chinchilla_no_floor_shared
CANDIDATES = ["chinchilla", "chinchilla_shared", "chinchilla_no_floor_shared", "kaplan"]


def _data(seed: int = 0) -> FitData:
    noisy = TRUTH * np.exp(np.random.default_rng(seed).normal(0, 0.003, TRUTH.size))
    return FitData(np.stack([N, D]), ("n", "d"), noisy, None, "grid")


def test_search_finds_the_generating_form_and_keeps_its_fit():
    data = _data()
    search = FormSearch(ScalingLaw(intervals="profile"), CANDIDATES, scoring="loo").fit(data)
    selection, laws = select_form(data, CANDIDATES)  # the scores, computed by the older entry point
    assert search.best_form_ == selection.choice == "chinchilla_no_floor_shared"
    assert list(search.cv_results_["form"]) == list(selection.table["form"])
    best = search.best_estimator_
    assert best.form_.name == search.best_form_ and best.selection_ is search.selection_
    np.testing.assert_array_equal(best.theta_, laws[search.best_form_].theta_)  # the same point fit, not a refit
    assert best.intervals == "profile" and best.ci_ is not None  # the estimator's interval settings
    assert set(best.ci_) == set(best.params_)


def test_fit_law_is_a_search_for_auto_and_a_plain_fit_otherwise():
    data = _data(seed=1)
    auto = fit_law("auto", data, candidates=CANDIDATES, law_options={"intervals": None})
    assert auto.selection_ is not None and auto.form_.name == auto.selection_.choice
    fixed = fit_law("kaplan", data, law_options={"intervals": None})
    assert fixed.selection_ is None and fixed.form_.name == "kaplan"
    with pytest.raises(UserError, match="need form 'auto'"):
        fit_law("kaplan", data, candidates=CANDIDATES)


def test_largest_scoring_ranks_by_rmsle_on_the_largest_scales():
    data = _data(seed=2)
    search = FormSearch(ScalingLaw(), CANDIDATES, scoring="largest", validation=0.25, refit=False).fit(data)
    mask = holdout_mask("largest:6", data)  # 25% of 24 points
    reference = backtest(data, mask, CANDIDATES, bootstrap=0).scores.set_index("form")["rmsle"]
    results = search.cv_results_.set_index("form")["rmsle"]
    np.testing.assert_allclose(results[reference.index], reference, rtol=1e-9)
    assert search.best_form_ == reference.idxmin() and search.best_estimator_ is None


def test_unknown_scoring_and_form_are_one_line_errors():
    with pytest.raises(UserError, match="scoring must be one of extrapolation, loo, largest"):
        FormSearch(ScalingLaw(), CANDIDATES, scoring="aic").fit(_data())
    with pytest.raises(UserError, match="nope"):
        FormSearch(ScalingLaw(), ["chinchilla", "nope"]).fit(_data())


def test_the_deprecated_auto_form_gives_the_search_result():
    data = _data(seed=3)
    search = FormSearch(ScalingLaw(intervals=None), CANDIDATES).fit(data)
    law = ScalingLaw(form="auto", candidates=CANDIDATES, intervals=None).fit(data)
    assert law.form_.name == search.best_form_
    np.testing.assert_array_equal(law.theta_, search.best_estimator_.theta_)
