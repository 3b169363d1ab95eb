"""The one compute-optimal answer (optimal/answer.py): the consensus where the methods' intervals overlap, else
the estimate its rule stands behind, with why."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from scalinglab.optimal.agreement import compare_methods
from scalinglab.optimal.answer import compute_optimal_answer, outside_note
from scalinglab.optimal.curves import Curves
from scalinglab.optimal.powerfit import PowerLaw

BUDGET = 1e12


def _law(k: float, exponent: float, spread: float) -> PowerLaw:
    """N = k C^a with bootstrap replicas whose predictions at BUDGET spread by `spread` (log) around it."""
    offsets = np.linspace(-spread, spread, 41)
    samples = np.stack([np.log(k) + offsets, np.full(offsets.size, exponent)], axis=1)
    return PowerLaw(k, exponent, samples)


def _optimal(laws: dict, isoflop_minima: int = 0, dropped: list[str] | None = None) -> SimpleNamespace:
    """A fitted ComputeOptimal's surface: its curves (two model sizes; the larger alone at the top budget),
    its laws, their predictions and agreement at the largest budget."""
    curves = Curves(
        run=np.array(["a", "a", "b", "b"]),
        n=np.array([1e4, 1e4, 1e5, 1e5]),
        c=np.array([1e10, 1e11, 1e11, BUDGET]),
        s=None,
        d=np.array([1e5, 1e6, 1e5, 1e6]),
        value=np.array([2.0, 1.5, 1.6, 1.2]),
        higher_is_better=False,
        source="test",
    )

    def predict(c: float) -> pd.DataFrame:
        rows = [(m, q, c, float(law.predict(c)), *law.interval(c)) for (m, q), law in laws.items()]
        return pd.DataFrame(rows, columns=["method", "quantity", "budget", "value", "lower", "upper"])

    agreement = compare_methods(laws, {"largest observed budget": BUDGET}, 0.95, {})
    reasons = pd.Series([f"the best size lies outside the sizes sampled there, {r}" for r in (dropped or [])])
    return SimpleNamespace(
        curves_=curves,
        laws_=laws,
        predict=predict,
        agreement_=agreement,
        ci_level=0.95,
        n_budgets=10,
        isoflop_=pd.DataFrame({"budget": np.arange(isoflop_minima)}),
        isoflop_dropped_=pd.DataFrame({"reason": reasons}),
    )


def _fitted_law(cv_error: float, at_bounds: list[str] | None = None) -> SimpleNamespace:
    table = pd.DataFrame({"form": ["chinchilla"], "cv_error": [cv_error]})
    return SimpleNamespace(
        not_identified_=[], at_bounds_=at_bounds or [], selection_=SimpleNamespace(table=table, choice="chinchilla")
    )


def test_overlapping_methods_give_their_consensus_inside_the_shared_interval():
    laws = {
        ("envelope", "N"): _law(3e4 / BUDGET**0.5, 0.5, 0.5),
        ("parametric", "N"): _law(5e4 / BUDGET**0.5, 0.5, 0.5),
    }
    answer = compute_optimal_answer(_optimal(laws), _fitted_law(0.02))
    assert answer.method == "consensus"
    assert np.isclose(answer.n, np.sqrt(3e4 * 5e4))  # the geometric mean, inside [5e4 e^-0.5, 3e4 e^0.5]
    assert answer.n_lower <= answer.n <= answer.n_upper
    assert "overlap" in answer.reason


def test_apart_methods_stand_behind_an_identified_parametric_law_and_say_why():
    laws = {
        ("envelope", "N"): _law(1e5 / BUDGET**0.6, 0.6, 0.1),
        ("parametric", "N"): _law(5e3 / BUDGET**0.5, 0.5, 0.1),
    }
    optimal = _optimal(laws, dropped=["beyond the smallest"] * 3)
    answer = compute_optimal_answer(optimal, _fitted_law(0.02))
    assert answer.method == "parametric" and np.isclose(answer.n, 5e3)
    assert "held-out cells to 2.0%" in answer.reason and "envelope 1e+05" in answer.reason
    assert "only the largest model (1e+05) reaches the largest budget" in answer.reason
    assert "beyond the smallest sampled at 3 of its 10 budgets" in answer.reason
    assert outside_note(answer, optimal) == "N 2x below the smallest sampled (1e+04)"


def test_a_law_at_a_bound_or_off_held_out_hands_the_answer_to_isoflop_then_the_envelope():
    laws = {
        ("envelope", "N"): _law(1e5 / BUDGET**0.6, 0.6, 0.1),
        ("isoflop", "N"): _law(4e4 / BUDGET**0.5, 0.5, 0.1),
        ("parametric", "N"): _law(5e3 / BUDGET**0.5, 0.5, 0.1),
    }
    at_bound = compute_optimal_answer(_optimal(laws, isoflop_minima=3), _fitted_law(0.02, ["E"]))
    assert at_bound.method == "isoflop" and "E open or at a bound" in at_bound.reason
    off = compute_optimal_answer(_optimal(laws, isoflop_minima=1), _fitted_law(0.08))
    assert off.method == "envelope" and "8.0%, above 5%" in off.reason
