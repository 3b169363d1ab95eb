"""The optimal hyperparameter per cell and its power laws, against closed forms and scipy's linear regression."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from scalinglab.hparams import HparamLaw, cell_optima, fit_hparam_law, tune
from scalinglab.hparams.optimum import LN2_SQUARED
from scalinglab.testing import example_trials

LR_LAW = (3.0, -0.25, 0.05)
BATCH_LAW = (0.5, 0.2, 0.1)
BATCHES = tuple(2**k for k in range(6, 14))


def true_lr(frame):
    return LR_LAW[0] * frame.n ** LR_LAW[1] * frame.d ** LR_LAW[2]


def test_cell_optimum_is_the_parabolas_vertex():
    # The loss is exactly a parabola in log lr, so the fitted vertex is the true optimum to rounding,
    # never a grid point (the grid is shifted off it), and a 2x error costs curvature (ln 2)^2.
    optima = cell_optima(example_trials(LR_LAW, curvature=0.02), "lr")
    assert (optima.status == "ok").all() and len(optima) == 25
    np.testing.assert_allclose(optima.opt, true_lr(optima), rtol=1e-9)
    np.testing.assert_allclose(optima.cost_2x, 0.02 * LN2_SQUARED, rtol=1e-9)
    np.testing.assert_allclose(optima.cost_2x_rel, optima.cost_2x / optima.at_opt, rtol=1e-12)
    # Five points, three coefficients: the residuals vanish and so does the interval.
    np.testing.assert_allclose(optima.hi / optima.lo, 1.0, atol=1e-6)


def test_cell_optimum_higher_is_better_and_profile_over_batch_sizes():
    table = example_trials(LR_LAW, batch_law=BATCH_LAW, batch_sizes=BATCHES)
    score = table.assign(value=10.0 - table.value)
    optima = cell_optima(score, "lr", higher_is_better=True)
    np.testing.assert_allclose(optima.opt, true_lr(optima), rtol=1e-9)
    assert (optima.at_opt < 10).all()  # the score at the optimum, in the score's own units
    batch = cell_optima(table, "batch_size")
    ok = batch[batch.status == "ok"]
    np.testing.assert_allclose(ok.opt, BATCH_LAW[0] * ok.n ** BATCH_LAW[1] * ok.d ** BATCH_LAW[2], rtol=1e-9)
    # The smallest cell's optimum batch (0.5 x 1e7^0.2 x 2e8^0.1 = 43) lies below the grid's 64: not bracketed.
    edge = batch[batch.status != "ok"]
    assert len(edge) == 1 and edge.status.iloc[0].startswith("edge: the best value is the grid's smallest")
    assert np.isnan(edge.opt.iloc[0])


def test_cell_with_noise_has_an_interval_around_its_vertex():
    optima = cell_optima(example_trials(LR_LAW, noise=0.001, seed=1), "lr")
    assert (optima.lo < optima.opt).all() and (optima.opt < optima.hi).all()
    assert optima.log_se.notna().all()


def test_law_recovers_the_exponents_of_the_optimum():
    optima = cell_optima(example_trials(LR_LAW), "lr")
    law = fit_hparam_law(optima, "lr", "nd")
    assert law.scale == pytest.approx(LR_LAW[0], rel=1e-9)
    assert law.exponents["n"] == pytest.approx(LR_LAW[1], abs=1e-10)
    assert law.exponents["d"] == pytest.approx(LR_LAW[2], abs=1e-10)
    value, lo, hi = law.predict(n=1e10, d=1e12)
    assert value == pytest.approx(LR_LAW[0] * 1e10 ** LR_LAW[1] * 1e12 ** LR_LAW[2], rel=1e-9)
    assert lo <= value <= hi


def test_law_in_compute_matches_scipy_linregress():
    optima = cell_optima(example_trials(LR_LAW, noise=0.001, seed=2), "lr")
    law = fit_hparam_law(optima, "lr", "c", level=0.9)
    ok = optima[optima.status == "ok"]
    reference = stats.linregress(np.log(ok.c), np.log(ok.opt))
    assert law.exponents["c"] == pytest.approx(reference.slope, rel=1e-9)
    assert law.scale == pytest.approx(np.exp(reference.intercept), rel=1e-9)
    half = stats.t.ppf(0.95, len(ok) - 2) * reference.stderr
    low, high = law.exponent_intervals()["c"]
    assert (low, high) == pytest.approx((reference.slope - half, reference.slope + half), rel=1e-9)


def test_law_round_trips_and_refuses_too_few_cells():
    optima = cell_optima(example_trials(LR_LAW), "lr")
    law = fit_hparam_law(optima, "lr", "nd")
    again = HparamLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    assert again.predict(n=1e9, d=1e11)[0] == pytest.approx(law.predict(n=1e9, d=1e11)[0], rel=1e-12)
    with pytest.raises(Exception, match="2 cells with a bracketed optimum; a law in n, d needs 3"):
        fit_hparam_law(optima.head(2), "lr", "nd")


def test_tune_finds_both_hyperparameters_and_predicts():
    table = example_trials(LR_LAW, batch_law=BATCH_LAW, batch_sizes=BATCHES)
    results = {t.column: t for t in tune(table)}
    assert set(results) == {"lr", "batch_size"}
    assert results["batch_size"].laws["nd"].exponents["n"] == pytest.approx(BATCH_LAW[1], abs=1e-9)
    assert any("1 of 25 cells have no bracketed optimum" in note for note in results["batch_size"].notes)
    predicted = results["lr"].predict(n=1e10, d=1e12, budget=6e22)
    assert set(predicted) == {"nd", "c"}


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("hparams") / "trials.csv"
    example_trials(LR_LAW, batch_law=BATCH_LAW, batch_sizes=BATCHES).to_csv(path, index=False)
    return path


def run(*args):
    return subprocess.run([sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300)


def test_hparams_cli_json_and_saved_laws(trials_csv, tmp_path):
    out = tmp_path / "laws.json"
    proc = run("hparams", str(trials_csv), "--n-at", "1e10", "--d-at", "1e12", "--json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["hparams"]
    assert summary["lr"]["laws"]["nd"]["exponents"]["n"] == pytest.approx(LR_LAW[1], abs=1e-9)
    expected = LR_LAW[0] * 1e10 ** LR_LAW[1] * 1e12 ** LR_LAW[2]
    assert summary["lr"]["predictions"]["nd"]["opt"] == pytest.approx(expected, rel=1e-9)
    assert len(summary["batch_size"]["cells"]) == 25
    saved = json.loads(out.read_text())["hparam_laws"]
    assert saved["lr"]["nd"]["scale"] == pytest.approx(LR_LAW[0], rel=1e-9)
    text = run("hparams", str(trials_csv), "--hparams", "lr", "--budget", "1e22")
    assert text.returncode == 0 and "a 2x error in lr costs" in text.stdout and "at C = 1.00e+22" in text.stdout


def test_hparams_cli_errors(trials_csv, tmp_path):
    half = run("hparams", str(trials_csv), "--n-at", "1e10")
    assert half.returncode == 2 and "--n-at and --d-at go together" in half.stderr
    missing = run("hparams", str(trials_csv), "--hparams", "momentum")
    assert missing.returncode == 2 and "no column 'momentum'" in missing.stderr
    single = tmp_path / "one.csv"
    example_trials(LR_LAW).drop_duplicates(["n_params", "dataset_size"]).to_csv(single, index=False)
    none = run("hparams", str(single))
    assert none.returncode == 2 and "no hyperparameter varies within a cell" in none.stderr


def test_the_report_reads_best_of_and_draws_the_optima(tmp_path):
    from scalinglab.analysis import analyse
    from scalinglab.report.html import write_report

    table = example_trials(LR_LAW)
    analysis = analyse(table, "trials", bootstrap=0, form="chinchilla", intervals=None)
    assert analysis.trials is not None and analysis.trials.kept == 25
    assert len(analysis.final) == 25  # the law is fitted on the best trials only
    assert analysis.hparams[0].laws["nd"].exponents["n"] == pytest.approx(LR_LAW[1], abs=1e-9)
    page = write_report(analysis, tmp_path / "report").read_text()
    assert "<h2>Hyperparameters</h2>" in page and (tmp_path / "report" / "figures" / "hparam-lr.svg").exists()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["hparams"]["lr"]["laws"]["nd"]["scale"] == pytest.approx(LR_LAW[0], rel=1e-9)
    every = analyse(table, "trials", bootstrap=0, form="chinchilla", intervals=None, trials=False)
    assert every.trials is None and len(every.final) == 175


def test_the_report_says_so_when_no_cells_optimum_is_bracketed(tmp_path):
    from scalinglab.analysis import analyse
    from scalinglab.report.html import write_report

    table = example_trials(LR_LAW)
    best = LR_LAW[0] * table.n_params ** LR_LAW[1] * table.dataset_size ** LR_LAW[2]
    below = table[table.lr < best].reset_index(drop=True)  # every cell's best trial at its grid's top end
    analysis = analyse(below, "trials", bootstrap=0, form="chinchilla", intervals=None)
    assert all(s.startswith("edge: the best value is the grid's largest") for s in analysis.hparams[0].optima.status)
    page = write_report(analysis, tmp_path / "report").read_text()
    assert "No cell&#x27;s optimum in lr is bracketed" in page or "No cell's optimum in lr is bracketed" in page
