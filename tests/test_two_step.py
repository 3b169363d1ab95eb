"""Two-step laws: (N, D) -> loss by a law, loss -> task metric by a monotone link, chained with intervals."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.fit.extrapolation import TOO_FEW
from scalinglab.fit.forms import get_form
from scalinglab.fit.links import LINKS, evaluate_link, fit_link, select_link
from scalinglab.fit.two_step import TwoStepLaw, two_step_data
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss

LINK_TRUTH = {
    "sigmoid": np.array([0.25, 0.9, 6.0, 2.6]),  # floor, ceiling, k, x0: accuracy falling with the loss
    "exponential": np.array([0.05, 0.004, 1.8]),  # c, a, b: an error rising with the loss
    "power": np.array([0.1, 0.02, 3.0]),  # c, a, b
}


def sigmoid_accuracy(loss: np.ndarray) -> np.ndarray:
    return evaluate_link("sigmoid", LINK_TRUTH["sigmoid"], loss)


# one start at the truth: the tests about chaining, pairing and saving need a fit, not the 4,500-start search
NEAR_TRUTH = get_form("chinchilla").from_public(TRUE_PARAMS)[None, :]


def two_step_table(seed: int = 0, loss_noise: float = 0.005, metric_noise: float = 0.01) -> pd.DataFrame:
    """6 model x 4 data sizes, 4 checkpoints each: chinchilla loss, accuracy = a known sigmoid of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.geomspace(1e7, 3e9, 6):
        for d_final in np.geomspace(2e8, 2e11, 4):
            for k, frac in enumerate((0.25, 0.5, 0.75, 1.0)):
                d = d_final * frac
                loss = chinchilla_loss(np.array([n]), np.array([d]))[0] * np.exp(rng.normal(0, loss_noise))
                acc = sigmoid_accuracy(loss) + rng.normal(0, metric_noise)
                run = f"n{n:.2g}-d{d_final:.2g}"
                rows.append({"run_id": run, "n_params": n, "dataset_size": d, "steps": k + 1, "loss": loss, "acc": acc})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", LINKS)
def test_each_link_recovers_its_parameters_from_exact_points(name):
    x = np.linspace(2.0, 3.5, 40)
    y = evaluate_link(name, LINK_TRUTH[name], x)
    link = fit_link(name, x, y)
    np.testing.assert_allclose(link.params, LINK_TRUTH[name], rtol=1e-5)
    np.testing.assert_allclose(link(x), y, atol=1e-9)
    assert np.all(np.diff(np.sign(np.diff(link(np.linspace(0.5, 8, 200))))) == 0)  # monotone far beyond the data


def test_the_sigmoid_reads_floor_below_ceiling_whichever_way_it_runs():
    x = np.linspace(1.0, 4.0, 30)
    rising = evaluate_link("sigmoid", np.array([0.9, 0.25, 6.0, 2.6]), x)  # the same curve as k = -6 with 0.25, 0.9
    params = fit_link("sigmoid", x, rising).named_params
    assert params["floor"] == pytest.approx(0.25, rel=1e-5) and params["ceiling"] == pytest.approx(0.9, rel=1e-5)
    assert params["k"] == pytest.approx(-6.0, rel=1e-5)


def test_link_selection_finds_the_saturating_link_by_held_out_runs():
    rng = np.random.default_rng(1)
    x = np.linspace(1.8, 4.0, 48)
    y = sigmoid_accuracy(x) + rng.normal(0, 0.005, x.size)
    groups = np.repeat(np.arange(12), 4)
    selection, links = select_link(x, y, groups, limits=(0.0, 1.0))
    assert selection.choice == "sigmoid" and selection.unit == "run"
    assert set(selection.table["link"]) == set(LINKS) and selection.table["chosen"].sum() == 1
    assert set(links) == set(LINKS)


def _sigmoid_runs(runs: int = 12, seed: int = 1):
    """`runs` runs of 4 pairs each, the loss falling as compute grows, accuracy a known sigmoid of the loss."""
    rng = np.random.default_rng(seed)
    x = np.linspace(4.0, 1.8, 4 * runs)
    y = sigmoid_accuracy(x) + rng.normal(0, 0.005, x.size)
    return x, y, np.repeat(np.arange(runs), 4), np.geomspace(1e18, 1e22, x.size)


def test_link_selection_by_extrapolation_scores_the_runs_beyond_each_cut():
    from scalinglab.fit.extrapolation import folds_over
    from scalinglab.fit.links import fit_link_params, link_folds

    x, y, groups, compute = _sigmoid_runs()
    selection, _ = select_link(x, y, groups, limits=(0.0, 1.0), compute=compute)
    assert selection.scoring == "extrapolation" and selection.choice == "sigmoid"
    assert "beyond the compute cuts" in selection.reason
    table = selection.table.set_index("link")
    folds = link_folds(x, groups, compute, 4)
    assert table["extrap_folds"].eq(len(folds)).all() and len(folds) >= 2
    # brute force: each fold's held-out runs are those whose compute exceeds the cut, fitted on the rest
    per_run_compute = pd.Series(compute).groupby(groups).max()
    every = [f.held_out.tolist() for f in folds_over(per_run_compute.index.to_numpy(), per_run_compute.to_numpy())]
    assert all(f.held_out.tolist() in every for f in folds)
    errors = []
    for fold in folds:
        out = np.isin(groups, fold.held_out)
        assert (compute[out].min() > compute[~out].max()) and set(groups[out]) == set(fold.held_out)
        params, _ = fit_link_params("power", x[~out], y[~out], limits=(0.0, 1.0))
        errors.append(np.mean(np.abs(evaluate_link("power", params, x[out]) - y[out])))
    assert table.loc["power", "extrap_error"] == pytest.approx(np.mean(errors), rel=1e-12)


def test_link_selection_falls_back_to_leave_one_run_out():
    x, y, groups, compute = _sigmoid_runs()
    loo, _ = select_link(x, y, groups, limits=(0.0, 1.0), scoring="loo", compute=compute)
    assert loo.scoring == "loo" and "extrap_error" not in loo.table
    x, y, groups, compute = _sigmoid_runs(runs=4)
    few, _ = select_link(x, y, groups, limits=(0.0, 1.0), compute=compute)
    assert few.scoring == "loo" and few.reason.startswith(TOO_FEW)
    with pytest.raises(UserError, match="scoring must be extrapolation or loo"):
        select_link(x, y, groups, scoring="largest")


def test_a_synthetic_two_step_truth_is_recovered():
    table = two_step_table(loss_noise=1e-4, metric_noise=1e-4)
    law = TwoStepLaw(higher_is_better=True, link="auto", intervals=None).fit(
        table, {"y": "acc"}, via="loss", final_only=False
    )
    for name, value in TRUE_PARAMS.items():
        assert law.step1_.params_[name] == pytest.approx(value, rel=0.05), name
    assert law.link_.name == "sigmoid" and law.link_selection_.scoring == "extrapolation"
    np.testing.assert_allclose(law.link_.params, LINK_TRUTH["sigmoid"], rtol=0.02)
    n, d = np.array([1e10, 3e10]), np.array([1e12, 3e12])  # beyond the sweep: the chain extrapolates
    with pytest.warns(UserWarning, match="outside the fitted range"):
        predicted = law.predict(n=n, d=d)
    np.testing.assert_allclose(predicted, sigmoid_accuracy(chinchilla_loss(n, d)), atol=0.005)
    assert law.n_pairs_ == 96 and law.n_runs_ == 24


def test_observation_rows_pair_the_loss_and_the_metric_by_run_and_step():
    wide = two_step_table(seed=2)
    keep = ["run_id", "n_params", "dataset_size", "steps"]
    long = pd.concat(
        [
            wide[keep].assign(metric="loss", split="eval", value=wide["loss"]),
            wide[keep].assign(metric="minADE", split="eval", value=2.0 - wide["acc"]),  # lower is better
            wide[keep].assign(metric="loss", split="train", value=wide["loss"] * 0.9),
        ],
        ignore_index=True,
    ).sample(frac=1.0, random_state=0)  # row order must not matter
    data = two_step_data(long, ("n", "d"), "loss", metric="minADE", split="eval", final_only=False)
    assert data.x.size == len(wide)
    by_row = long.loc[long.index[data.rows]]
    assert (by_row["metric"] == "minADE").all()
    truth = wide.set_index(["run_id", "steps"])
    expected = truth.loc[list(zip(by_row["run_id"], by_row["steps"], strict=True))]
    np.testing.assert_allclose(data.x, expected["loss"].to_numpy())
    np.testing.assert_allclose(data.y, 2.0 - expected["acc"].to_numpy())
    law = TwoStepLaw(link="sigmoid", intervals=None, starts=NEAR_TRUTH).fit(data)
    assert law.link_.named_params["floor"] == pytest.approx(2.0 - 0.9, abs=0.02)
    with pytest.raises(UserError, match="name the task metric with --metric"):
        two_step_data(long, ("n", "d"), "loss", split="eval")
    with pytest.raises(UserError, match="neither a column nor a value"):
        two_step_data(long, ("n", "d"), "perplexity", metric="minADE", split="eval")


def test_save_and_load_give_the_same_chain(tmp_path):
    law = TwoStepLaw(higher_is_better=True, link="sigmoid", bootstrap=20, seed=3, intervals=None, starts=NEAR_TRUTH)
    law.fit(two_step_table(seed=4), {"y": "acc"}, via="loss", final_only=False)
    law.save(tmp_path / "two.json")
    again = TwoStepLaw.load(tmp_path / "two.json")
    n, d = np.array([5e8, 2e9]), np.array([1e10, 1e11])
    for a, b in zip(law.predict(n=n, d=d, return_ci=True), again.predict(n=n, d=d, return_ci=True), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    (tmp_path / "bad.json").write_text(json.dumps({"two_step": True, "via": "loss"}))
    with pytest.raises(UserError, match="bad.json: not a scalinglab two-step fit"):
        TwoStepLaw.load(tmp_path / "bad.json")


@pytest.mark.slow
def test_chained_intervals_cover_the_truth_at_the_stated_rate():
    # 40 sweeps of 12 runs x 3 checkpoints from a known power law with a floor and a sigmoid link; 90% intervals
    # from 80 resamples of whole runs through both steps. Coverage of each interior point must lie in the
    # binomial's central 99.9% band for n = 40, p = 0.9: 30 .. 40 (the two checks fail by chance about 0.2%).
    xs = np.array([3e7, 3e8])
    truth = sigmoid_accuracy(10 * xs**-0.15 + 2.0)  # loss 2.8 and 2.6: the link's steep part
    hits = np.zeros(2)
    start = get_form("power_offset").from_public({"E": 2.0, "A": 10.0, "alpha": 0.15})[None, :]
    for seed in range(40):
        rng = np.random.default_rng(seed)
        rows = []
        for i, x in enumerate(np.geomspace(1e6, 1e9, 12)):
            for c in (1, 2, 3):
                flops = x * c / 3
                loss = (10 * flops**-0.15 + 2.0) * np.exp(rng.normal(0, 0.01))
                rows.append(
                    {
                        "run_id": f"r{i}",
                        "flops": flops,
                        "steps": c,
                        "loss": loss,
                        "acc": sigmoid_accuracy(loss) + rng.normal(0, 0.01),
                    }
                )
        law = TwoStepLaw(
            form="power_offset",
            link="sigmoid",
            higher_is_better=True,
            bootstrap=80,
            seed=seed,
            ci_level=0.9,
            intervals=None,
            starts=start,
        )
        law.fit(pd.DataFrame(rows), {"x": "flops", "y": "acc"}, via="loss", final_only=False)
        _, lo, hi = law.predict(x=xs, return_ci=True)
        hits += (lo <= truth) & (truth <= hi)
    assert np.all((hits >= 30) & (hits <= 40)), hits


@pytest.mark.slow
def test_cli_fit_via(tmp_path):
    path = tmp_path / "runs.csv"
    two_step_table(seed=5).to_csv(path, index=False)
    args = [sys.executable, "-m", "scalinglab", "fit", str(path), "--via", "loss", "--y", "acc", "--all-points"]
    proc = subprocess.run(
        [*args, "--higher-is-better", "--json", "-o", str(tmp_path / "f.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["two_step"] and out["via"] == "loss" and out["step1"]["form"] == "chinchilla"
    assert out["link_selection"]["choice"] == out["link"]["link"]
    assert {c["link"] for c in out["link_selection"]["candidates"]} == set(LINKS)
    assert TwoStepLaw.load(tmp_path / "f.json").link_.name == out["link"]["link"]
    back = [sys.executable, "-m", "scalinglab", "backtest", str(path), "--via", "loss", "--y", "acc", "--all-points"]
    back += ["--higher-is-better", "--forms", "chinchilla", "--holdout", "n_params>1e9", "--bootstrap", "10", "--json"]
    proc = subprocess.run(back, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {s["method"] for s in out["scores"]} == {"direct:chinchilla", "two_step:chinchilla"}
    assert {p["method"] for p in out["predictions"]} == {"direct:chinchilla", "two_step:chinchilla"}
    assert len(out["predictions"]) == 2 * 16  # the 4 runs of the largest model, 4 checkpoints each
    assert set(out["predictions"][0]) == {"method", "row", "run", "observed", "predicted", "lower", "upper"}
    bad = subprocess.run([*args[:5], "--via", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "'nope'" in bad.stderr


def test_report_pieces():
    from types import SimpleNamespace

    from scalinglab.report.two_step import chained_figure, exponent_differences, link_figure

    data = two_step_data(two_step_table(seed=6), ("n", "d"), "loss", {"y": "acc"}, final_only=False)
    law = TwoStepLaw(higher_is_better=True, link="sigmoid", bootstrap=10, intervals=None, starts=NEAR_TRUTH).fit(data)
    fig = link_figure(law, data, "acc")
    assert len(fig.axes[0].collections[0].get_offsets()) == 96  # every checkpoint drawn
    fig = chained_figure(law, None, data, "acc")
    observed = fig.axes[0].collections[-1].get_offsets()
    assert len(observed) == 6  # each model's last checkpoint at the largest D
    # exponents apart beyond their intervals are named; overlapping or open ones are not
    law_a = SimpleNamespace(
        params_={"alpha": 0.3, "beta": 0.3}, ci_={"alpha": (0.25, 0.35), "beta": (0.2, None)}, ci_level=0.95
    )
    law_b = SimpleNamespace(
        params_={"alpha": 0.5, "beta": 0.6}, ci_={"alpha": (0.4, 0.6), "beta": (0.5, 0.7)}, ci_level=0.95
    )
    assert exponent_differences({"eval": law_a, "eval:dense": law_b}) == [
        "alpha differs between eval (0.3) and eval:dense (0.5) beyond their 95% intervals"
    ]
    assert exponent_differences({"eval": law_a, "eval:x": law_a}) == [
        "no exponent differs beyond its interval across eval, eval:x"
    ]


@pytest.mark.slow
def test_the_report_shows_the_metric_through_the_loss(tmp_path):
    # observation rows: the loss and the accuracy at every checkpoint, as a study writes them
    wide = two_step_table(seed=5)
    wide["flops"] = 6 * wide["n_params"] * wide["dataset_size"]
    rows = [
        wide.drop(columns=["loss", "acc"]).assign(metric=name, split="eval", value=wide[column])
        for name, column in (("loss", "loss"), ("acc", "acc"))
    ]
    obs = pd.concat(rows, ignore_index=True)
    from scalinglab.analysis import analyse
    from scalinglab.report.html import write_report
    from scalinglab.report.two_step import two_step_section

    analysis = analyse(obs, "table", metric="acc", higher_is_better=True, bootstrap=0, intervals=None)
    assert analysis.two_step is not None and analysis.two_step_error is None
    assert set(two_step_section(analysis.two_step).figures) == {"link", "chained"}
    html = write_report(analysis, tmp_path / "r").read_text()
    assert "acc through the loss (two-step law)" in html


def test_a_metric_equal_to_the_loss_gets_no_two_step_section():
    """A one-mode behaviour model's loss is its ADE: minADE through the loss would be the identity, so the
    report says so instead of fitting a degenerate link (a 1% change anywhere brings the section back)."""
    from scalinglab.analysis import analyse

    wide = two_step_table(seed=6)
    wide["flops"] = 6 * wide["n_params"] * wide["dataset_size"]
    base = wide.drop(columns=["loss", "acc"])
    same = pd.concat(
        [
            base.assign(metric="loss", split="eval", value=wide["loss"]),
            base.assign(metric="minADE", split="eval", value=wide["loss"] * (1 + 1e-7)),
        ],
        ignore_index=True,
    )
    analysis = analyse(same, "table", metric="minADE", bootstrap=0, intervals=None)
    assert analysis.two_step is None
    assert analysis.two_step_error.startswith(f"minADE equals the eval loss at all {len(wide)} checkpoints")
    other = same.copy()
    other.loc[(other["metric"] == "minADE") & (other["steps"] == 4), "value"] *= 1.01
    assert not analysis_two_step_skipped(other)


def analysis_two_step_skipped(obs: pd.DataFrame) -> bool:
    from scalinglab.analysis.two_step import _same_as_loss

    return bool(_same_as_loss(obs, "minADE", "eval"))
