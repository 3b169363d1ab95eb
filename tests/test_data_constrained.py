"""The steps-aware (data-constrained) form: exact derivatives, parameters recovered from synthetic
learning curves, and its one-epoch reduction to chinchilla."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit.forms import get_form
from scalinglab.fit.law import ScalingLaw

TRUTH = {"E": 1.2, "A": 300.0, "B": 900.0, "alpha": 0.45, "beta": 0.55, "R_star": 8.0}
FORM = get_form("data_constrained")


def effective_data(unique: np.ndarray, seen: np.ndarray, r_star: float) -> np.ndarray:
    """Muennighoff et al. (2023) eq. 5, written directly: fresh samples plus decaying repeats."""
    repeats = np.maximum(seen / unique - 1.0, 0.0)
    return np.minimum(seen, unique) + unique * r_star * (1.0 - np.exp(-repeats / r_star))


def true_loss(n: np.ndarray, unique: np.ndarray, seen: np.ndarray) -> np.ndarray:
    d_eff = effective_data(unique, seen, TRUTH["R_star"])
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d_eff ** TRUTH["beta"]


def curves(noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A 4 x 3 grid of runs, each with checkpoints from a quarter epoch to 32 epochs."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (1e4, 4e4, 1.6e5, 6.4e5):
        for unique in (1e3, 4e3, 1.6e4):
            for epochs in (0.25, 0.5, 1, 2, 4, 8, 16, 32):
                seen = unique * epochs
                value = true_loss(np.array(n), np.array(unique), np.array(seen)) * np.exp(noise * rng.normal())
                rows.append(
                    {
                        "run_id": f"{n:g}-{unique:g}",
                        "n_params": n,
                        "dataset_size": unique,
                        "samples_seen": seen,
                        "steps": epochs,
                        "value": float(value),
                    }
                )
    return pd.DataFrame(rows)


def test_prediction_matches_the_published_formula():
    table = curves()
    lx = np.log(table[["n_params", "dataset_size", "samples_seen"]].to_numpy().T)
    theta = FORM.from_public(TRUTH)
    predicted = np.exp(FORM.log_predict(theta[None, :], lx)[0])
    assert np.allclose(predicted, table["value"], rtol=1e-12)


def test_jacobian_matches_central_differences():
    table = curves()
    lx = np.log(table[["n_params", "dataset_size", "samples_seen"]].to_numpy().T)
    theta = FORM.from_public(TRUTH)[None, :] + np.array([[0.1, -0.2, 0.3, 0.05, -0.05, 0.2]])
    _, jac = FORM.value_and_jacobian(theta, lx)
    step = 1e-6
    for k in range(FORM.n_params):
        shift = np.zeros_like(theta)
        shift[0, k] = step
        numeric = (FORM.log_predict(theta + shift, lx) - FORM.log_predict(theta - shift, lx)) / (2 * step)
        assert np.allclose(jac[..., k], numeric, rtol=1e-6, atol=1e-8)


def test_one_epoch_reduces_to_chinchilla():
    n, unique = np.array([1e4, 1e6]), np.array([1e3, 1e5])
    lx = np.log(np.stack([n, unique, unique]))
    theta = FORM.from_public(TRUTH)
    chinchilla = get_form("chinchilla")
    assert np.allclose(FORM.log_predict(theta[None], lx), chinchilla.log_predict(theta[None, :5], lx[:2]), rtol=1e-13)


def test_recovers_the_generating_parameters_from_every_checkpoint():
    law = ScalingLaw(form="data_constrained", intervals=None).fit(curves())
    assert law.n_points_ == 96  # every checkpoint, not one per run
    for name, value in TRUTH.items():
        assert law.params_[name] == pytest.approx(value, rel=1e-3), name


@pytest.mark.slow
def test_noisy_curves_give_intervals_that_hold_the_truth():
    # 1% noise: every parameter is identified, and the truth lies within 3 standard errors (the 95% interval's
    # half-width on the truth's side is 1.96 of them): a 0.3% chance per parameter of a miss by bad luck.
    law = ScalingLaw(form="data_constrained").fit(curves(noise=0.01, seed=3))
    assert not law.not_identified_
    for name, truth in TRUTH.items():
        lower, upper = law.ci_[name]
        value = law.params_[name]
        half_width = (value - lower) if truth < value else (upper - value)
        assert abs(truth - value) < 3 / 1.96 * half_width, name


def test_two_variable_law_is_chinchilla_at_one_epoch():
    law = ScalingLaw(form="data_constrained", intervals=None).fit(curves())
    reduced = law.two_variable()
    assert reduced.form_.name == "chinchilla"
    n, d = np.array([2e4, 3e5]), np.array([2e3, 1e4])
    expected = law.predict(n=n, d=d, seen=d)
    assert np.allclose(reduced.predict(n=n, d=d), expected, rtol=1e-12)
    assert set(reduced.params_) == {"E", "A", "B", "alpha", "beta"}


def test_final_points_only_when_asked():
    law = ScalingLaw(form="data_constrained", intervals=None).fit(curves(), final_only=True)
    assert law.n_points_ == 12


def test_auto_weighs_every_checkpoint_when_asked():
    # Curves that repeat their data for up to 32 epochs: the final points alone mislead chinchilla (D' < S),
    # so the held-out runs' final points are predicted better by the form that reads every checkpoint.
    from scalinglab import fit_law

    candidates = ("chinchilla", "chinchilla_no_floor", "data_constrained")
    data = curves(noise=0.002, seed=1)
    law = fit_law("auto", data, candidates=candidates, law_options={"intervals": None}, select_by="loo")
    table = law.selection_.table.set_index("form")
    assert set(table.index) == set(candidates)
    assert (table["folds"] == 12).all()  # every candidate held out the same 12 runs
    assert law.selection_.choice == "data_constrained"
    assert law.form_.name == "data_constrained" and law.n_points_ == 96
    assert table.loc["data_constrained", "cv_log_error"] < table.loc["chinchilla", "cv_log_error"]
    # by extrapolation (the default) every candidate is scored on the same forward folds, the steps-aware one
    # at the last checkpoint of each held-out run: it predicts the larger runs better than chinchilla
    law = fit_law("auto", data, candidates=candidates, law_options={"intervals": None})
    table = law.selection_.table.set_index("form")
    assert law.selection_.scoring == "extrapolation" and table["extrap_folds"].nunique() == 1
    assert table.loc["data_constrained", "extrap_log_error"] < table.loc["chinchilla", "extrap_log_error"]


def test_cli_fits_every_checkpoint_and_refuses_unknown_candidates(tmp_path):
    import json
    import subprocess
    import sys

    path = tmp_path / "curves.csv"
    curves().rename(columns={"samples_seen": "seen so far"}).to_csv(path, index=False)
    args = [sys.executable, "-m", "scalinglab", "fit", str(path), "--seen", "seen so far", "--intervals", "bootstrap"]
    out = subprocess.run(
        [*args, "--form", "data_constrained", "--bootstrap", "20", "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)
    assert fit["n_points"] == 96 and fit["inputs"] == ["n", "d", "seen"]
    assert fit["params"]["beta"] == pytest.approx(TRUTH["beta"], rel=1e-3)
    bad = subprocess.run([*args, "--form", "auto", "--candidates", "chinchilla,nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown form 'nope'")


def test_predict_takes_samples_seen_and_names_a_missing_input(tmp_path):
    import json
    import subprocess
    import sys

    path, fit_file = tmp_path / "curves.csv", tmp_path / "fit.json"
    curves().to_csv(path, index=False)
    base = [sys.executable, "-m", "scalinglab"]
    fitted = subprocess.run(
        [*base, "fit", str(path), "--form", "data_constrained", "-o", str(fit_file), "--json"],
        capture_output=True,
        text=True,
    )
    assert fitted.returncode == 0, fitted.stderr
    out = subprocess.run(
        [*base, "predict", str(fit_file), "--n", "2e5", "--d", "8e3", "--seen", "8e3,6.4e4", "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    predicted = [row["prediction"] for row in json.loads(out.stdout)["predictions"]]
    truth = true_loss(np.array([2e5, 2e5]), np.array([8e3, 8e3]), np.array([8e3, 6.4e4]))
    np.testing.assert_allclose(predicted, truth, rtol=1e-3)  # a noiseless fit recovers the law
    missing = subprocess.run(
        [*base, "predict", str(fit_file), "--n", "2e5", "--d", "8e3"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    need = "form 'data_constrained' predicts from --n --d --seen: missing --seen"
    assert missing.stderr == f"error: {fit_file}: {need}\n"
