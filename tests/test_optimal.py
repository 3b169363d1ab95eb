"""Compute-optimal laws, profiles and costs against closed forms from a known L(N, D)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw, UserError
from scalinglab.optimal import ComputeOptimal, parametric_allocation
from scalinglab.optimal.curves import select_curves
from scalinglab.optimal.envelope import envelope, near_optimal
from scalinglab.optimal.iso_metric import cost_table, iso_metric_profile, require_nd, solve_d
from scalinglab.optimal.smoothing import antitonic, running_median, smooth_score
from scalinglab.testing import example_curves, example_observations

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.348, "beta": 0.366}


@pytest.fixture(scope="module")
def curves_fit():
    obs = example_curves(params=HOFFMANN, noise=0.001, seed=1)
    return ComputeOptimal(bootstrap=30, seed=0).fit(obs)


def test_three_methods_recover_the_n_opt_exponent_and_agree(curves_fit):
    truth = HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])
    table = curves_fit.exponents_.set_index(["method", "quantity"])
    found = {m: table.loc[(m, "N"), "exponent"] for m in ("envelope", "isoflop", "parametric")}
    for method, exponent in found.items():
        assert exponent == pytest.approx(truth, abs=0.03), method
    assert max(found.values()) - min(found.values()) < 0.05
    # S and D from the envelope grow as C^(1 - a): C = 6 N D
    assert table.loc[("envelope", "D"), "exponent"] == pytest.approx(1 - truth, abs=0.03)
    assert table.loc[("envelope", "S"), "exponent"] == pytest.approx(1 - truth, abs=0.03)


def test_predictions_have_intervals(curves_fit):
    pred = curves_fit.predict(1e21).set_index(["method", "quantity"])
    n_true = parametric_allocation(HOFFMANN, 1e21)[0]
    for method in ("envelope", "isoflop", "parametric"):
        row = pred.loc[(method, "N")]
        assert row["lower"] <= row["value"] <= row["upper"]
        assert row["value"] == pytest.approx(n_true, rel=0.3)


@pytest.mark.parametrize("params", [HOFFMANN, EPOCH])
def test_parametric_allocation_closed_form(params):
    c = np.array([1e20, 5.76e23])
    n_opt, d_opt = parametric_allocation(params, c, flops_per_param_sample=6.0)
    a, b = params["alpha"], params["beta"]
    g = (a * params["A"] / (b * params["B"])) ** (1 / (a + b))
    np.testing.assert_allclose(n_opt, g * (c / 6) ** (b / (a + b)), rtol=1e-12)
    np.testing.assert_allclose(6 * n_opt * d_opt, c, rtol=1e-12)
    # brute force: along C = 6 N D, no N on a fine grid does better than N_opt
    for budget, best in zip(c, n_opt, strict=True):
        grid = best * np.geomspace(0.5, 2, 2001)
        loss = params["E"] + params["A"] / grid**a + params["B"] / (budget / (6 * grid)) ** b
        assert grid[np.argmin(loss)] == pytest.approx(best, rel=2e-3)


def test_envelope_is_the_best_point_per_bin_and_the_upper_one_for_map():
    obs = example_curves(params=HOFFMANN, model_sizes=np.geomspace(2e7, 2e9, 5), run_lengths=(1.0,))
    curves = select_curves(obs)
    env = envelope(curves, n_bins=12)
    edges = np.geomspace(curves.c.min(), curves.c.max() * (1 + 1e-12), 13)
    centres = np.sqrt(edges[:-1] * edges[1:])
    assert len(env) > 5
    for _, row in env.iterrows():
        i = int(np.argmin(np.abs(np.log(centres / row["bin_flops"]))))
        in_bin = (curves.c >= edges[i]) & (curves.c < edges[i + 1])
        assert row["value"] == curves.value[in_bin].min()  # brute force over the bin
    mapped = obs.assign(value=1 - obs["value"] / 10)
    upper = envelope(select_curves(mapped, higher_is_better=True), n_bins=12)
    np.testing.assert_allclose(upper["value"].to_numpy(), 1 - env["value"].to_numpy() / 10)
    near = near_optimal(curves, n_bins=12, tolerance=0.5)
    assert len(near) > len(env)  # a wide tolerance admits more than the argmin


def test_one_run_and_missing_flops_are_clear_errors():
    obs = example_curves(params=HOFFMANN, model_sizes=np.array([1e8]), run_lengths=(1.0,))
    with pytest.raises(UserError, match="one run"):
        ComputeOptimal().fit(obs)
    with pytest.raises(UserError, match="no column 'flops'"):
        ComputeOptimal().fit(example_curves(params=HOFFMANN).drop(columns="flops"))


def test_smoothing_is_a_median_then_the_least_squares_non_increasing_fit():
    from scipy.optimize import isotonic_regression

    rng = np.random.default_rng(3)
    y = np.sort(rng.uniform(1, 5, 30))[::-1] + rng.normal(0, 0.2, 30)
    np.testing.assert_allclose(antitonic(y), isotonic_regression(y, increasing=False).x, atol=1e-12)
    straight = np.linspace(5, 2, 12)
    np.testing.assert_allclose(running_median(straight), straight)  # a straight stretch is left alone, ends too
    spiked = straight.copy()
    spiked[[0, 6, 11]] = [0.1, 9.0, 0.1]  # one wild point at each end and one inside
    smoothed, flagged = smooth_score(spiked)
    assert set(np.flatnonzero(flagged)) >= {0, 6, 11}
    np.testing.assert_allclose(smoothed[1:-1], straight[1:-1])  # interpolated between regular neighbours
    assert smoothed[0] == straight[1] and smoothed[-1] == straight[-2]  # an end takes its nearest regular value
    curve = 1.8 + 40 / np.geomspace(1e3, 1e6, 40) ** 0.3  # a loss curve: no outliers, every value kept
    smoothed, flagged = smooth_score(curve)
    assert not flagged.any()
    np.testing.assert_allclose(smoothed, curve)


def test_an_outlying_checkpoint_does_not_move_the_robust_envelope():
    obs = example_curves(params=HOFFMANN, model_sizes=np.geomspace(2e7, 2e9, 8), run_lengths=(1.0,), points_per_run=30)
    clean = ComputeOptimal(method="envelope", bootstrap=0).fit(obs)
    bad = obs.copy()
    row = bad.index[bad["run_id"] == bad["run_id"].iloc[0]][-8]  # the smallest model, late in its run
    bad.loc[row, "value"] *= 0.6
    robust = ComputeOptimal(method="envelope", bootstrap=0).fit(bad)
    raw = ComputeOptimal(method="envelope", bootstrap=0, envelope="raw").fit(bad)
    keys = ["run_id", "flops", "value"]
    pd.testing.assert_frame_equal(robust.envelope_[keys], clean.envelope_[keys])
    assert robust.exponents_["exponent"].tolist() == clean.exponents_["exponent"].tolist()
    assert bad.loc[row, "flops"] in raw.envelope_["flops"].to_numpy()  # the raw envelope takes it as optimal
    assert robust.outliers_["flops"].tolist() == [bad.loc[row, "flops"]]
    assert any("outlying checkpoint" in w and "does not take it" in w for w in robust.warnings_)
    assert robust.raw_envelope_["flops"].tolist() == raw.envelope_["flops"].tolist()


def test_each_method_states_what_it_used_and_dropped(law):
    # sizes 5e8..2e9 do not bracket N_opt at the smallest budgets, where the best size is the smallest sampled
    obs = example_curves(params=HOFFMANN, model_sizes=np.geomspace(5e8, 2e9, 4), run_lengths=(0.25, 1.0))
    extra = example_curves(params=HOFFMANN, model_sizes=np.array([4e9]), run_lengths=(4.0,))  # one run beyond all
    co = ComputeOptimal(method="all", bootstrap=0, law=law)
    co.fit(pd.concat([obs, extra], ignore_index=True))
    iso = co.usage_["isoflop"]
    assert iso["points"] == len(co.isoflop_)
    assert (iso["flops_low"], iso["flops_high"]) == (co.isoflop_["budget"].min(), co.isoflop_["budget"].max())
    assert len(iso["dropped"]) == len(co.isoflop_dropped_) == 10 - len(co.isoflop_)
    assert any("outside the sizes sampled" in d["reason"] for d in iso["dropped"])
    env = co.usage_["envelope"]
    bins = co.curves_.c
    edges = np.geomspace(bins.min(), bins.max() * (1 + 1e-12), 31)
    index = np.clip(np.searchsorted(edges, bins, side="right") - 1, 0, 29)
    runs_per_bin = pd.Series(co.curves_.run).groupby(index).nunique()  # brute force
    assert len(env["dropped"]) == int((runs_per_bin == 1).sum()) > 0
    assert env["points"] == int((runs_per_bin >= 2).sum()) == len(co.envelope_)
    table = co.usage_table_
    assert table["method"].tolist() == ["envelope", "isoflop", "parametric"]
    assert table.set_index("method").loc["isoflop", "dropped"] == len(iso["dropped"])


@pytest.fixture(scope="module")
def law():
    return ScalingLaw().fit(example_observations())


def test_profile_points_reach_the_target(law):
    p = iso_metric_profile(law, improvement=0.01)
    values = law.predict(n=p.curve["n_params"].to_numpy(), d=p.curve["dataset_size"].to_numpy())
    np.testing.assert_allclose(values, p.target, rtol=1e-6)
    assert p.target == pytest.approx(0.99 * p.reference["value"])


def test_cheapest_point_matches_the_lagrange_solution(law):
    # minimise N D on E + A/N^alpha + B/D^beta = L*: alpha A / N^alpha = beta B / D^beta.
    p = iso_metric_profile(law, improvement=0.02)
    q = law.params_
    gap = p.target - q["E"]
    x = q["beta"] * gap / (q["alpha"] + q["beta"])
    n_star = (q["A"] / x) ** (1 / q["alpha"])
    d_star = (q["B"] / (gap - x)) ** (1 / q["beta"])
    assert p.cheapest["n"] == pytest.approx(n_star, rel=1e-6)
    assert p.cheapest["d"] == pytest.approx(d_star, rel=1e-6)


def test_targets_beyond_the_floor_are_refused(law):
    with pytest.raises(UserError, match="beyond the law's floor"):
        iso_metric_profile(law, target=law.params_["E"] * 0.99)
    table = cost_table(law, (0.01, 0.5))
    assert table["flops_multiple"].iloc[0] > 1
    assert "floor" in table["note"].iloc[1]
    assert np.isnan(solve_d(law, np.array([1e3]), law.params_["E"] * 1.01))[0]


def test_cost_grows_faster_than_the_improvement(law):
    table = cost_table(law)
    assert np.all(np.diff(table["flops_multiple"]) > 0)
    assert table["flops_multiple"].iloc[-1] > 10 * table["flops_multiple"].iloc[0]


@pytest.mark.slow
def test_cli_optimal_profile_cost(tmp_path):
    curves = tmp_path / "curves.csv"
    example_curves(params=HOFFMANN, noise=0.001).to_csv(curves, index=False)

    def run(*args, rc=0):
        proc = subprocess.run([sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == rc, proc.stderr
        return proc

    out = json.loads(run("optimal", str(curves), "--bootstrap", "10", "--budget", "1e22", "--json").stdout)
    assert {r["method"] for r in out["exponents"]} == {"envelope", "isoflop", "parametric"}
    assert set(out["usage"]) == {"envelope", "isoflop", "parametric"}
    assert {"comparisons", "estimates", "warnings"} <= set(out["agreement"])
    largest = pd.read_csv(curves)["flops"].max()
    budgets = sorted({r["budget"] for r in out["agreement"]["comparisons"] if r["budget"]})
    assert budgets == pytest.approx([largest, 1e22])
    printed = run("optimal", str(curves), "--method", "envelope", "--bootstrap", "0").stdout
    assert "what each method used" in printed and "do the methods agree?" in printed
    fit = tmp_path / "fit.json"
    obs = tmp_path / "obs.csv"
    example_observations().to_csv(obs, index=False)
    run("fit", str(obs), "-o", str(fit))
    prof = json.loads(run("profile", str(fit), "--improvement", "0.01", "--json").stdout)
    assert prof["multipliers"]["flops"] > 1
    assert "cost of improvement" in run("cost", str(fit)).stdout
    assert "beyond the law's floor" in run("profile", str(fit), "--target", "0.5", rc=2).stderr
    single = tmp_path / "one.csv"
    example_curves(params=HOFFMANN, model_sizes=np.array([1e8]), run_lengths=(1.0,)).to_csv(single, index=False)
    assert "one run" in run("optimal", str(single), rc=2).stderr


def test_cost_refuses_improvements_out_of_range_and_laws_not_in_n_and_d(law):
    with pytest.raises(UserError, match="between 0 and 1 for a lower-is-better metric"):
        cost_table(law, (0.01, 1.5))
    with pytest.raises(UserError, match="improvement must be between 0 and 1"):
        iso_metric_profile(law, improvement=-0.01)
    one_var = ScalingLaw(form="power").fit(example_observations(), {"x": "flops"})
    with pytest.raises(UserError, match="fit_x.json: form 'power' is a law in x"):
        require_nd(one_var, "fit_x.json")
    with pytest.raises(UserError, match="form 'power' is a law in x"):
        cost_table(one_var)


def test_a_higher_is_better_metric_may_improve_by_more_than_100_percent():
    obs = example_observations()
    obs["value"] = 0.7 - obs["value"] / 10  # an accuracy of 0.18 at the smallest run, 0.51 at the law's best
    law = ScalingLaw(higher_is_better=True, ceiling=0.7).fit(obs)
    p = iso_metric_profile(law, improvement=1.5, reference=(1e7, 2e8))
    assert p.target == pytest.approx(2.5 * p.reference["value"])
    assert p.improvement == 1.5
    with pytest.raises(UserError, match="improvement must be > 0"):
        iso_metric_profile(law, improvement=0.0)


def test_the_cost_scales_with_flops_per_param_sample(law):
    # C = k N D: the cheapest (N, D) does not depend on k, its FLOPs are proportional to it.
    six = iso_metric_profile(law, improvement=0.01)
    two = iso_metric_profile(law, improvement=0.01, flops_per_param_sample=2.0)
    assert two.cheapest["n"] == pytest.approx(six.cheapest["n"], rel=1e-9)
    assert two.cheapest["flops"] == pytest.approx(six.cheapest["flops"] / 3, rel=1e-9)
    assert (six.flops_per_param_sample, two.flops_per_param_sample) == (6.0, 2.0)
    for bad in (0.0, -6.0, float("nan")):
        with pytest.raises(UserError, match="flops_per_param_sample must be a finite number > 0"):
            iso_metric_profile(law, improvement=0.01, flops_per_param_sample=bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_bins": 0}, "n_bins must be a whole number >= 1"),
        ({"bootstrap": -5}, "bootstrap must be a whole number >= 0"),
        ({"tolerance": -0.1}, "tolerance must be a finite number >= 0"),
        ({"flops_per_param_sample": -6.0}, "flops_per_param_sample must be a finite number > 0"),
        ({"ci_level": 0.0}, "ci_level must be between 0 and 1"),
    ],
)
def test_compute_optimal_refuses_bad_options(options, message):
    with pytest.raises(UserError, match=message):
        ComputeOptimal(**options).fit(example_curves(params=HOFFMANN, points_per_run=5))


@pytest.mark.parametrize("form", ["chinchilla_no_floor", "chinchilla_no_floor_shared"])
def test_the_nested_forms_have_the_parametric_rule(form):
    """E does not enter the allocation: a no-floor law gets N_opt ~ C^(beta / (alpha + beta)) from its own
    parameters, and a shared exponent gives C^0.5 exactly, said to be the form's assumption."""
    obs = example_curves(params=HOFFMANN, noise=0.001, seed=1)
    final = obs.sort_values("flops").groupby("run_id").tail(1)
    law = ScalingLaw(form=form, bootstrap=10, intervals=None).fit(final.assign(dataset_size=final["samples_seen"]))
    fitted = ComputeOptimal(method="parametric", law=law, bootstrap=10).fit(obs)
    row = fitted.exponents_.set_index(["method", "quantity"]).loc[("parametric", "N")]
    p = law.params_
    shared = form.endswith("shared")
    assert row["exponent"] == pytest.approx(0.5 if shared else p["beta"] / (p["alpha"] + p["beta"]), rel=1e-12)
    full = {"E": 0.0, "beta": p["alpha"], **p}
    n_opt = fitted.predict(1e21).set_index(["method", "quantity"]).loc[("parametric", "N"), "value"]
    assert n_opt == pytest.approx(parametric_allocation(full, 1e21)[0], rel=1e-9)
    assert any("by construction" in w for w in fitted.warnings_) == shared


def test_parametric_d_opt_is_counted_in_samples_seen():
    """A law in unique data trained for 64 epochs: N_opt is unchanged, D_opt is 64x the law's D (the samples
    the envelope counts), and the domain notes use FLOPs per sample seen."""
    obs = example_curves(params=HOFFMANN, noise=0.001, seed=1)
    final = obs.sort_values("flops").groupby("run_id").tail(1)
    table = final.assign(dataset_size=final["samples_seen"])
    law = ScalingLaw(form="chinchilla", bootstrap=10, intervals=None).fit(table)
    once, epochs = (
        ComputeOptimal(method="parametric", law=law, bootstrap=10, samples_per_datum=e).fit(obs) for e in (1.0, 64.0)
    )
    a = once.predict(1e21).set_index("quantity")
    b = epochs.predict(1e21).set_index("quantity")
    assert b.loc["N", "value"] == pytest.approx(a.loc["N", "value"], rel=1e-12)
    assert b.loc["D", "value"] == pytest.approx(64 * a.loc["D", "value"], rel=1e-12)
    assert b.loc["D", "lower"] == pytest.approx(64 * a.loc["D", "lower"], rel=1e-9)
    with pytest.raises(UserError, match="samples_per_datum"):
        ComputeOptimal(method="parametric", law=law, samples_per_datum=0).fit(obs)
