"""The report's figures against independent truths: the drawn envelope never crosses a run curve, the
heatmap's sign matches its colour, the contour stays in the metric's range; the verdict's numbers, the
summary and the grouped terminal warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.cli.render import group_warnings
from scalinglab.fit.law import ScalingLaw
from scalinglab.report import figures
from scalinglab.report.envelope_figures import drawn_envelope
from scalinglab.report.verdict import doubling
from scalinglab.testing import chinchilla_loss


def random_curves(seed: int, higher_is_better: bool) -> pd.DataFrame:
    """Crossing, noisy, unevenly sampled runs: no run dominates everywhere."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(7):
        start = 10 ** rng.uniform(12, 14)
        flops = np.sort(start * 10 ** rng.uniform(0, 3, rng.integers(2, 12)))
        value = 3.0 * (flops / 1e12) ** -rng.uniform(0.02, 0.3) * np.exp(rng.normal(0, 0.05, flops.size))
        if higher_is_better:
            value = 1.0 - value / 4.0
        rows += [{"run_id": f"r{r}", "flops": c, "value": v} for c, v in zip(flops, value, strict=True)]
    return pd.DataFrame(rows)


def _plotted(value: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return value if higher_is_better else np.log(value)


@pytest.mark.parametrize("higher_is_better", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_envelope_never_crosses_a_run_curve(seed, higher_is_better):
    curves = random_curves(seed, higher_is_better)
    env = drawn_envelope(curves, higher_is_better)
    sign = -1.0 if higher_is_better else 1.0
    x_env, y_env = np.log(env["flops"].to_numpy()), sign * _plotted(env["value"].to_numpy(), higher_is_better)
    assert np.all(np.diff(x_env) > 0)
    assert np.all(np.diff(y_env) <= 1e-12)  # monotone: never worse with more compute
    # Brute force: every run as drawn (straight between checkpoints in the plotted coordinates), densely.
    for _, run in curves.groupby("run_id"):
        run = run.sort_values("flops")
        x_run = np.log(run["flops"].to_numpy())
        y_run = sign * _plotted(run["value"].to_numpy(), higher_is_better)
        probe = np.linspace(x_run[0], x_run[-1], 2001)
        on_run = np.interp(probe, x_run, y_run)
        on_env = np.interp(probe, x_env, y_env)
        assert np.all(on_env <= on_run + 1e-9)
    # And it is the envelope, not a floor drawn anywhere below: at every FLOPs value it draws, the best any
    # run has reached with at most that compute (brute force over the runs as drawn).
    best = np.full(x_env.size, np.inf)
    for _, run in curves.groupby("run_id"):
        run = run.sort_values("flops")
        x_run = np.log(run["flops"].to_numpy())
        y_run = sign * _plotted(run["value"].to_numpy(), higher_is_better)
        inside = (x_env >= x_run[0] - 1e-12) & (x_env <= x_run[-1] + 1e-12)
        best[inside] = np.minimum(best[inside], np.interp(x_env[inside], x_run, y_run))
    np.testing.assert_allclose(y_env, np.minimum.accumulate(best), rtol=0, atol=1e-9)


def test_the_envelope_follows_a_single_dominant_run_exactly():
    curves = pd.DataFrame(
        {"run_id": ["a"] * 3 + ["b"] * 2, "flops": [1e12, 1e13, 1e14, 1e12, 1e14], "value": [3, 2, 1.5, 4, 3]}
    )
    env = drawn_envelope(curves, higher_is_better=False)
    assert env["value"].tolist() == pytest.approx([3, 2, 1.5]) and set(env["run_id"]) == {"a"}


def heatmap_table(higher_is_better: bool) -> pd.DataFrame:
    """A grid without a 1X/1X cell: the smallest model's smallest data scale is 0.075X; one cell worse."""
    rows = []
    for m in (1.0, 2.0, 4.0):
        for k in (0.075, 0.5, 1.0):
            loss = 2.0 - 0.1 * np.log2(m) - 0.2 * k
            if (m, k) == (2.0, 0.5):
                loss = 2.3  # a regression
            rows.append({"model_scale": m, "data_scale": k, "value": 1 - loss / 3 if higher_is_better else loss})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_heatmap_sign_matches_colour_and_title_names_the_reference(higher_is_better):
    table = heatmap_table(higher_is_better)
    fig = figures.relative_heatmap(table, "metric", higher_is_better)
    ax = fig.axes[0]
    assert "1X model / 0.075X data" in ax.get_title()
    image = ax.images[0]
    rgba = image.to_rgba(image.get_array())
    grid = table.pivot(index="model_scale", columns="data_scale", values="value").to_numpy()
    reference = grid[0, 0]
    expected = (grid - reference) / abs(reference) * 100 * (1 if higher_is_better else -1) + 0.0  # no -0.0
    texts = iter(ax.texts)
    for (i, j), value in np.ndenumerate(expected):
        text = next(texts).get_text()
        assert text == f"{value:+.1f}%"
        red, green = rgba[i, j, 0], rgba[i, j, 1]
        if value > 0.5:
            assert text.startswith("+") and green > red  # better is green
        elif value < -0.5:
            assert text.startswith("-") and red > green  # worse is red
    assert expected[1, 1] < 0  # the regression is there, drawn red, whichever way the metric runs
    assert "positive = better" in fig.axes[1].get_ylabel()


@pytest.fixture(scope="module")
def map_law():
    """A law on 1 - mAP whose smallest run has mAP near 0: extrapolated below it, mAP would go negative."""
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4), indexing="ij"))
    error = chinchilla_loss(n, d) / chinchilla_loss(1e7, 1e9) * 0.98
    table = pd.DataFrame({"n_params": n, "dataset_size": d, "value": 1 - error})
    law = ScalingLaw("chinchilla", higher_is_better=True, intervals=None).fit(table, final_only=False)
    return law, table


def test_contour_levels_are_even_in_range_and_the_cheapest_point_is_inside(map_law):
    from scalinglab.optimal.iso_metric import iso_metric_profile

    law, table = map_law
    profile = iso_metric_profile(law, improvement=0.01)
    fig = figures.law_contour(law, table, "mAP", profile)
    ax = fig.axes[0]
    levels = np.asarray(ax.collections[0].levels if hasattr(ax.collections[0], "levels") else fig.axes[1].get_yticks())
    steps = np.diff(levels)
    assert np.allclose(steps, steps[0])  # evenly spaced levels
    assert levels.min() >= -1e-12 and levels.max() <= 1.0 + 1e-12  # no mAP below 0 or above 1 on the colourbar
    assert any("leaves the range" in t.get_text() for t in ax.texts)  # the grid did reach negative mAP: blanked
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 <= profile.cheapest["n"] <= x1 and y0 <= profile.cheapest["d"] <= y1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("cheapest") for label in labels)


def test_doubling_matches_the_closed_form(map_law):
    law, _ = map_law
    p, n, d = law.params_, law.best_point_["n"], law.best_point_["d"]

    def m_ap(n_, d_):
        return 1 - (p["E"] + p["A"] / n_ ** p["alpha"] + p["B"] / d_ ** p["beta"])

    expected = (m_ap(2 * n, d) - m_ap(n, d)) / abs(m_ap(n, d)) * 100
    sentence = doubling(law, "n", "mAP")
    assert sentence.startswith(f"Doubling N improves mAP by {expected:.2g}%")
    assert "--bootstrap" in sentence  # no refits: the sentence says how to get an interval


def test_predict_frame_is_predict_in_a_table(map_law):
    law, _ = map_law
    n, d = np.array([1e8, 2e8]), np.array([1e10, 1e10])
    frame = law.predict_frame(n=n, d=d)
    assert list(frame.columns) == ["n", "d", "prediction"]
    np.testing.assert_array_equal(frame["prediction"], law.predict(n=n, d=d))


def test_terminal_warnings_are_grouped_by_kind():
    messages = [
        f"compute-optimal: isoflop: budget {b:.3g} skipped: the best size lies outside" for b in (1e13, 2e13, 4e14)
    ]
    messages += [f"N = {n:g} is {n / 1e9:g}x the largest fitted N (1e9): far extrapolation" for n in (2e10, 4e10)]
    messages += ["L(N, D) fit: E is not identified", "L(N, D) fit: B is not identified"]
    lines = group_warnings(messages)
    assert lines[0] == "isoflop: 3 budgets skipped: see the report or --json for each reason"
    assert lines[1] == "2 predictions extrapolate far beyond the data: see the report or --json"
    assert lines[2:] == messages[-2:]
    assert group_warnings(["a 1", "a 2", "a 3"]) == ["a 1 (and 2 more like it: see the report or --json)"]
