"""Cell ends as curves (optimal/cell_ends.py): each model's finished runs at every data scale, read by the
envelope and IsoFLOP in place of mid-run checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.optimal.cell_ends import cell_ends, interpolate_ends
from scalinglab.optimal.compute_optimal import ComputeOptimal
from scalinglab.optimal.curves import select_curves

E, A, ALPHA, B, BETA = 1.0, 40.0, 0.34, 120.0, 0.28  # a chinchilla surface: N_opt ~ C^(beta / (alpha + beta))


def _loss(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return E + A / n**ALPHA + B / d**BETA


def _study(models: np.ndarray, scales: np.ndarray, base: float = 1e4, checkpoints: int = 5) -> pd.DataFrame:
    """Runs of every (model, data scale, seed 0), each with `checkpoints` rows whose loss is the surface at
    the samples seen so far plus a stable-phase excess that only the run's end is free of."""
    rows = []
    for m, n in enumerate(models):
        for scale in scales:
            d_end = base * scale
            for i, frac in enumerate(np.linspace(1 / checkpoints, 1, checkpoints)):
                d = d_end * frac
                excess = 0.0 if i == checkpoints - 1 else 0.3
                rows.append(
                    {
                        "run_id": f"m{m}-d{scale:g}-s0",
                        "model_scale": float(2**m),
                        "data_scale": float(scale),
                        "seed": 0,
                        "n_params": n,
                        "steps": int(round(d / 10)),
                        "samples_seen": d,
                        "flops": 6 * n * d,
                        "metric": "loss",
                        "split": "eval",
                        "value": float(_loss(n, d)) + excess,
                    }
                )
    return pd.DataFrame(rows)


def test_cell_ends_keep_each_runs_last_rows_as_one_curve_per_model():
    table = _study(np.array([1e5, 2e5]), np.array([1.0, 2.0, 4.0]))
    ends = cell_ends(table)
    assert sorted(ends["run_id"].unique()) == ["m1-s0", "m2-s0"]
    assert len(ends) == 6 and ends["cell_run"].nunique() == 6
    expected = _loss(ends["n_params"].to_numpy(), ends["samples_seen"].to_numpy())
    np.testing.assert_allclose(ends["value"].to_numpy(), expected, rtol=1e-12)  # no stable-phase excess
    assert cell_ends(table[table["data_scale"] == 1.0]) is None  # one end per model: no curve
    assert cell_ends(table.drop(columns="seed")) is None


def test_interpolation_keeps_the_ends_and_is_linear_in_log_flops_between_them():
    ends = cell_ends(_study(np.array([1e5]), np.array([1.0, 2.0, 8.0])))
    curves = select_curves(ends, metric="loss", split="eval")
    dense = interpolate_ends(curves, per_segment=3)
    assert dense.c.size == 3 + 2 * 3 and int(dense.interpolated.sum()) == 6
    measured = ~dense.interpolated
    np.testing.assert_allclose(np.sort(dense.c[measured]), np.sort(curves.c), rtol=1e-12)
    np.testing.assert_allclose(dense.value[measured], curves.value[np.argsort(curves.c)], rtol=1e-12)
    # the midpoint of the first segment, by hand: halfway in log C, the values' mean, samples' geometric mean
    c0, c1 = np.sort(curves.c)[:2]
    v0, v1 = curves.value[np.argsort(curves.c)][:2]
    inside = (dense.c > c0) & (dense.c < c1)
    log_c = np.log(dense.c[inside])
    np.testing.assert_allclose(dense.value[inside], v0 + (log_c - np.log(c0)) / np.log(c1 / c0) * (v1 - v0))
    np.testing.assert_allclose(dense.d[inside], dense.c[inside] / (6 * 1e5), rtol=1e-9)  # C = 6 N D holds
    assert np.all(dense.n == 1e5)


def test_the_envelope_of_cell_ends_recovers_the_surfaces_compute_optimal_exponent():
    """On a dense grid of models and data scales whose checkpoints carry a stable-phase excess, the envelope of
    the ends finds N_opt ~ C^(beta / (alpha + beta)); the grid's spacing (13 sizes, 2 per octave in D) bounds
    how close: 0.04 on an exponent of 0.45."""
    models = np.geomspace(1e4, 1e7, 13)
    table = _study(models, 2.0 ** np.arange(0, 12.5, 0.5), base=1e3)
    ends = cell_ends(table)
    curves = interpolate_ends(select_curves(ends, metric="loss", split="eval"))
    optimal = ComputeOptimal(method="envelope", bootstrap=0).fit(curves)
    exponent = optimal.laws_["envelope", "N"].exponent
    assert exponent == pytest.approx(BETA / (ALPHA + BETA), abs=0.04)


def test_ends_asked_of_a_table_without_seeds_fall_back_to_every_run_and_say_why():
    from scalinglab.analysis import analyse

    table = _study(np.array([1e5, 2e5, 4e5]), np.array([1.0, 2.0, 4.0])).drop(columns="seed")
    result = analyse(table, "t.csv", metric="loss", bootstrap=0, form="chinchilla", data_scale="ends")
    assert "compute-optimal: --data-scale ends: the table has no seed column; the envelope uses every run" in (
        result.warnings
    )
    assert result.envelope_reads == "every run"
