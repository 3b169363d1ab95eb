"""`suggest`: candidates ranked by expected interval shrinkage per FLOP; sane rows, closed forms, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw, UserError
from scalinglab.observations import FitData, select_fit_data
from scalinglab.optimal.parametric import parametric_allocation
from scalinglab.optimal.suggest import _Decision, default_axes, default_candidates, grid_candidates, suggest_runs
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss


def grid_table(seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 6.4e8, 6), np.geomspace(2e9, 1.4e10, 4)))
    value = chinchilla_loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n.size)], "n_params": n, "dataset_size": d, "value": value})


@pytest.fixture(scope="module")
def data():
    return select_fit_data(grid_table(), ("n", "d"), None, n_params=5)


@pytest.fixture(scope="module")
def law(data):
    return ScalingLaw(intervals=None).fit(data)


@pytest.fixture(scope="module")
def ranked(data, law):
    candidates = default_candidates(*data.inputs)[::3]
    return suggest_runs(data, budget=1e21, candidates=candidates, bootstrap=20, seed=0, law=law)


def test_default_candidates_hold_every_iso_flop_line_up_to_the_largest_model(data):
    n, d = data.inputs
    candidates = default_candidates(n, d)
    n_axis, d_axis = default_axes(n, d)
    np.testing.assert_allclose(np.diff(np.log(n_axis)), np.log(2) / 2)  # one log step on both axes
    np.testing.assert_allclose(np.diff(np.log(d_axis)), np.log(2) / 2)
    assert n_axis[0] == n.min() and n_axis[-1] >= 4 * n.max() > n_axis[-2]
    assert d_axis[0] == pytest.approx(d.min() / 2) and d_axis[-1] >= 4 * d.max() > d_axis[-2]
    observed = set(zip(np.log(n).round(6), np.log(d).round(6), strict=True))
    keys = set(zip(np.log(candidates[:, 0]).round(6), np.log(candidates[:, 1]).round(6), strict=True))
    assert not observed & keys
    # brute force: every grid pair at least as costly as the largest model on the least data is a candidate ...
    every = [(a, b) for a in n_axis for b in d_axis if a * b >= n_axis[-1] * d_axis[0] * (1 - 1e-9)]
    fresh = [(a, b) for a, b in every if (round(np.log(a), 6), round(np.log(b), 6)) not in observed]
    assert len(candidates) == len(fresh)
    # ... so the largest model at each candidate's cost is a candidate too
    for a, b in candidates:
        assert (round(np.log(n_axis[-1]), 6), round(np.log(a * b / n_axis[-1]), 6)) in keys
    assert len(grid_candidates(np.array([1e8, n[0]]), np.array([d[0]]), n, d)) == 1


def test_rows_are_sane_and_ranked_by_shrinkage_per_flop(data, ranked):
    table = ranked.table
    count = len(default_candidates(*data.inputs)[::3])
    assert len(table) == count and table["rank"].tolist() == list(range(1, count + 1))
    np.testing.assert_allclose(table["flops"], 6 * table["n_params"] * table["dataset_size"], rtol=1e-12)
    assert np.all(np.isfinite(table["expected_width"])) and np.all(table["expected_width"] > 0)
    assert np.all(table["current_width"] == ranked.current["width"])
    np.testing.assert_allclose(table["score"], (table["current_width"] - table["expected_width"]) / table["flops"])
    assert np.all(np.diff(table["score"]) <= 0)
    now = ranked.current
    assert now["lower"] < now["value"] < now["upper"]
    assert now["width"] == pytest.approx(np.log10(now["upper"] / now["lower"]))
    assert 0.003 < ranked.noise < 0.03  # the residual scale of a fit to 1% noise
    out = ranked.to_dict(top=3)
    assert len(out["suggestions"]) == 3
    assert {"n_params", "dataset_size", "flops", "current_width", "expected_width", "score"} <= set(
        out["suggestions"][0]
    )
    json.dumps(out)


def test_a_top_pick_outside_the_observed_runs_is_flagged(data, law, ranked):
    n, d = data.inputs
    top = ranked.table.iloc[0]
    beyond = top["n_params"] > n.max() or top["n_params"] < n.min() or top["dataset_size"] > d.max()
    beyond = beyond or top["dataset_size"] < d.min()
    flagged = [w for w in ranked.warnings if w.startswith("the top pick lies outside the observed runs")]
    assert len(flagged) == int(beyond)
    inside = grid_candidates(np.array([n.min(), n.max()]), np.array([d.min() * 1.5, d.max() / 1.5]), n, d)
    within = suggest_runs(data, budget=1e21, candidates=inside, bootstrap=20, seed=0, law=law)
    assert not [w for w in within.warnings if "outside the observed runs" in w]
    far = suggest_runs(data, budget=1e21, candidates=np.array([[n.max() * 4, d.min()]]), bootstrap=20, seed=0, law=law)
    (message,) = [w for w in far.warnings if "outside the observed runs" in w]
    assert f"N {n.max() * 4:.3g} is 4x the largest observed ({n.max():.3g})" in message
    assert "smallest observed" not in message  # its D is the smallest observed one: inside the range


def test_the_decision_quantity_is_the_closed_form_n_opt_and_the_law_prediction(law):
    theta = law.form_.from_public(TRUE_PARAMS)[None, :]
    n_opt = _Decision(law, 1e21, None, 6.0).values(theta)[0]
    assert 10**n_opt == pytest.approx(parametric_allocation(TRUE_PARAMS, 1e21)[0], rel=1e-10)
    at = _Decision(law, None, (1e9, 1e11), 6.0).values(theta)[0]
    assert at == pytest.approx(chinchilla_loss(np.array(1e9), np.array(1e11)), rel=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "one decision"),
        ({"budget": 1e21, "target": (1e9, 1e11)}, "one decision"),
        ({"budget": -1.0}, "--budget"),
        ({"target": (1e9, 0.0)}, "--target-n and --target-d"),
        ({"budget": 1e21, "bootstrap": 5}, "bootstrap must be a whole number >= 20"),
        ({"budget": 1e21, "noise": -0.1}, "--noise"),
        ({"budget": 1e21, "candidates": np.array([[1e8, -1.0]])}, "finite and > 0"),
    ],
)
def test_bad_settings_are_user_errors(data, law, kwargs, needle):
    with pytest.raises(UserError, match=needle):
        suggest_runs(data, law=law, **kwargs)


@pytest.mark.slow
def test_cli_suggest_json_and_one_line_errors(tmp_path):
    path = tmp_path / "runs.csv"
    grid_table().rename(columns={"value": "loss"}).to_csv(path, index=False)

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "scalinglab", "suggest", str(path), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    proc = run("--y", "loss", "--budget", "1e21", "--bootstrap", "20", "--grid-n", "1e8,2e9", "--top", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["suggestions"]) == 2 and out["suggestions"][0]["score"] >= out["suggestions"][1]["score"]
    assert {row["n_params"] for row in out["suggestions"]} <= {1e8, 2e9}
    for args, needle in [
        (["--y", "loss"], "one decision"),
        (["--y", "loss", "--budget", "1e21", "--grid-n", "1e8,x"], "--grid-n"),
        (["--y", "loss", "--target-n", "1e9"], "--target-n and --target-d go together"),
        (["--budget", "1e21"], "no column 'value'"),
        (["--y", "loss", "--budget", "1e21", "--top", "0"], "--top"),
    ]:
        proc = run(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (
            proc.stderr
        )


def test_numeric_n_opt_matches_chinchillas_closed_form(law):
    from scalinglab.optimal.parametric import allocation_coefficients
    from scalinglab.optimal.suggest import NOPT_DECADES, NOPT_GRID, numeric_log10_n_opt

    rng = np.random.default_rng(0)
    theta = law.theta_[None, :] + rng.normal(0, 0.05, (16, law.theta_.size))  # laws near the fit
    log_kn, a, _, _ = allocation_coefficients(law.form_.to_public(theta), 6.0)
    for budget in (1e19, 1e21, 1e23):
        closed = (log_kn + a * np.log(budget)) / np.log(10)
        numeric = numeric_log10_n_opt(law.form_, theta, budget, 6.0)
        # the parabola's vertex is exact to third order in the grid step, 2 * NOPT_DECADES / (NOPT_GRID - 1)
        step = 2 * NOPT_DECADES / (NOPT_GRID - 1)
        np.testing.assert_allclose(numeric, closed, atol=step**2)


def test_suggest_ranks_with_any_law_in_n_and_d(data):
    shared = ScalingLaw(form="chinchilla_shared", intervals=None).fit(data)
    result = suggest_runs(data, budget=1e21, candidates=default_candidates(*data.inputs)[::6], bootstrap=20, law=shared)
    assert np.isfinite(result.current["value"]) and (result.table["score"].notna()).all()
    with pytest.raises(UserError, match="needs a law in N and D"):
        one_var = ScalingLaw(form="power", intervals=None).fit(FitData(data.inputs[:1], ("x",), data.y, None, "x"))
        suggest_runs(data, budget=1e21, law=one_var)
