"""The schedule-aware loss-curve law (Tissue et al. 2024): its areas against the published recursion and
closed forms, recovery of known parameters from curves drawn from it, and prediction across schedules."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit.schedule_law import Curve, ScheduleLaw, lr_areas, predict_areas
from scalinglab.study.config import ScheduleConfig
from scalinglab.study.schedule import learning_rates

TRUTH = np.array([2.0, 1.5, 0.45, 0.1])  # L0, A, alpha, C
PEAK = 3e-3


def test_areas_follow_the_published_recursion():
    rng = np.random.default_rng(0)
    lrs = rng.uniform(0, 1e-3, 300)
    s1, s2 = lr_areas(lrs, decay=0.99)
    m, total, area = 0.0, 0.0, []
    for i in range(lrs.size):  # m_i = lambda m_(i-1) + (eta_(i-1) - eta_i), S2 = sum of m_i, written out
        m = 0.99 * m + ((lrs[i - 1] - lrs[i]) if i else 0.0)
        total += m
        area.append(total)
    np.testing.assert_allclose(s2, area, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(s1, np.cumsum(lrs), rtol=1e-12)


def test_one_drop_has_the_closed_form_area():
    # eta = 1e-3 for 100 steps, then 4e-4: m_s = 6e-4 lambda^(s - 101) from step 101 on, a geometric sum
    lrs = np.r_[np.full(100, 1e-3), np.full(200, 4e-4)]
    _, s2 = lr_areas(lrs, decay=0.999)
    s = np.arange(101, 301)
    np.testing.assert_allclose(s2[s - 1], 6e-4 * (1 - 0.999 ** (s - 100)) / (1 - 0.999), rtol=1e-10)
    assert np.all(s2[:100] == 0)
    # warmup is not annealing: a rising rate leaves S2 at 0 through the warmup steps
    _, warm = lr_areas(np.r_[np.linspace(1e-4, 1e-3, 10), np.full(5, 1e-3)], warmup=10)
    assert np.all(warm == 0)


def _curve(kind: str, total: int, noise: float = 0.0, seed: int = 0, **schedule) -> Curve:
    lrs = learning_rates(ScheduleConfig(kind=kind, **schedule), total, PEAK)
    steps = np.unique(np.geomspace(20, total, 40).astype(int))
    s1, s2 = lr_areas(lrs)
    values = predict_areas(TRUTH, s1[steps - 1], s2[steps - 1])
    values = values * np.exp(noise * np.random.default_rng(seed).normal(size=steps.size))
    return Curve(steps, values, lrs)


def test_known_parameters_are_recovered_from_two_schedules():
    curves = [_curve("cosine", 2000, min_lr_ratio=0.1), _curve("constant", 1000)]
    law = ScheduleLaw().fit(curves)
    # noise-free curves drawn from the law: the truth is the exact (zero-residual) optimum
    np.testing.assert_allclose(law.theta_, TRUTH, rtol=1e-4)
    assert law.residual_scale_ < 1e-8 and law.at_bounds_ == []


def test_a_fit_on_short_runs_predicts_a_longer_run_under_another_schedule():
    train = [_curve("cosine", 1000, 0.002, 1), _curve("constant", 1500, 0.002, 2)]
    law = ScheduleLaw().fit(train)
    longer = learning_rates(ScheduleConfig(kind="wsd", decay_fraction=0.2, decay_shape="sqrt"), 6000, PEAK)
    steps = np.array([3000, 4800, 6000])
    s1, s2 = lr_areas(longer)
    truth = predict_areas(TRUTH, s1[steps - 1], s2[steps - 1])
    point, lo, hi = law.predict(steps, longer, return_ci=True)
    assert np.max(np.abs(point / truth - 1)) < 0.01  # 0.2% noise per point, a 4x longer run
    assert np.all(lo <= point) and np.all(point <= hi)
    # the cooldown's drop is the annealing term: without it (C = 0) the final point is far off
    no_anneal = predict_areas(law.theta_ * np.array([1, 1, 1, 0]), s1[-1:], s2[-1:])
    assert abs(no_anneal[0] / truth[-1] - 1) > 5 * abs(point[-1] / truth[-1] - 1)


def test_bad_inputs_are_named():
    with pytest.raises(UserError, match="at least 5 finite points"):
        ScheduleLaw().fit([Curve(np.array([1, 2]), np.array([3.0, 2.0]), np.full(2, 1e-3))])
    with pytest.raises(UserError, match="steps must lie in 1..10"):
        Curve(np.array([5, 11]), np.ones(2), np.full(10, 1e-3)).areas()
    with pytest.raises(UserError, match="finite numbers >= 0"):
        lr_areas(np.array([1e-3, -1.0]))
    with pytest.raises(UserError, match="decay"):
        lr_areas(np.full(3, 1e-3), decay=1.0)
    with pytest.raises(UserError, match="sums to 0"):
        Curve(np.array([1, 2]), np.ones(2), np.array([0.0, 1e-3])).areas()
