"""Agreement of the compute-optimal methods: interval overlap, consensus, warnings with causes, domain checks."""

import numpy as np
import pandas as pd
import pytest

from scalinglab import ScalingLaw
from scalinglab.optimal import ComputeOptimal
from scalinglab.optimal.agreement import compare_methods, domain_note
from scalinglab.optimal.powerfit import PowerLaw
from scalinglab.testing import chinchilla_loss, example_curves

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def law_with_exponents(exponents: np.ndarray, log_k: float = 0.0) -> PowerLaw:
    samples = np.stack([np.full(exponents.size, log_k), exponents], axis=1)
    return PowerLaw(float(np.exp(log_k)), float(np.median(exponents)), samples)


def test_overlapping_intervals_agree_with_their_consensus_and_common_interval():
    a = law_with_exponents(np.linspace(0.40, 0.50, 201))
    b = law_with_exponents(np.linspace(0.45, 0.55, 201))
    result = compare_methods({("envelope", "N"): a, ("isoflop", "N"): b}, {}, 0.95, {})
    row = result.table.iloc[0]
    assert row["verdict"] == "agree" and not result.warnings
    assert row["consensus"] == pytest.approx((0.45 + 0.50) / 2)
    assert (row["spread_low"], row["spread_high"]) == pytest.approx((0.45, 0.50))
    # the common interval is [largest lower bound, smallest upper bound] of the two percentile intervals
    assert row["common_lower"] == pytest.approx(np.percentile(np.linspace(0.45, 0.55, 201), 2.5))
    assert row["common_upper"] == pytest.approx(np.percentile(np.linspace(0.40, 0.50, 201), 97.5))


def test_disjoint_intervals_warn_naming_methods_numbers_and_causes():
    laws = {
        ("envelope", "N"): law_with_exponents(np.linspace(0.38, 0.44, 201)),
        ("isoflop", "N"): law_with_exponents(np.linspace(0.40, 0.43, 201)),
        ("parametric", "N"): law_with_exponents(np.linspace(0.61, 0.90, 201)),
    }
    causes = {"parametric": ["the parametric law does not identify alpha"], "isoflop": ["isoflop used few budgets"]}
    result = compare_methods(laws, {"largest observed budget": 1e20}, 0.95, causes)
    exponent = result.table.iloc[0]
    assert exponent["verdict"] == "disagree" and np.isnan(exponent["consensus"])
    warning = next(w for w in result.warnings if "exponent" in w)
    assert "envelope vs parametric" in warning and "isoflop vs parametric" in warning
    assert "envelope vs isoflop" not in warning  # those two overlap
    assert "parametric 0.755" in warning  # the point value of each method, with its interval
    assert "does not identify alpha" in warning and "isoflop used few budgets" in warning
    assert set(result.estimates["method"]) == {"envelope", "isoflop", "parametric"}
    assert len(result.table) == 2  # the exponent, and the prediction at the one budget


def test_no_intervals_is_said_not_judged():
    laws = {("envelope", "N"): PowerLaw(1.0, 0.4), ("isoflop", "N"): PowerLaw(1.0, 0.6)}
    result = compare_methods(laws, {}, 0.95, {})
    assert result.table["verdict"].tolist() == ["no intervals"] and not result.warnings


@pytest.mark.parametrize(
    ("quantity", "value", "budget", "needle"),
    [
        ("N", 2e3, 6e3, "under one training sample"),  # N > C / (6 * 1 sample)
        ("N", 5e2, 6e3, ""),
        ("N", 0.5, 6e3, "below one parameter"),
        ("D", 0.2, 6e3, "below one sample"),
        ("D", 5e3, 6e3, "under one parameter"),
        ("S", 0.9, 6e3, "below one step"),
        ("S", 3.0, 6e3, ""),
    ],
)
def test_domain_notes_follow_c_equals_k_n_d(quantity, value, budget, needle):
    note = domain_note(quantity, value, budget, 6.0)
    assert (needle in note and note) if needle else note == ""


@pytest.fixture(scope="module")
def agreeing():
    curves = example_curves(params=HOFFMANN, model_sizes=np.geomspace(2e7, 2e9, 8), points_per_run=20, noise=0.001)
    final = curves.sort_values("flops").groupby("run_id").tail(1).assign(dataset_size=lambda f: f["samples_seen"])
    law = ScalingLaw(bootstrap=20, intervals=None).fit(final, final_only=False)  # the parametric method's own fit
    return ComputeOptimal(bootstrap=20, seed=0, law=law).fit(curves)


def test_methods_on_one_law_agree_without_warnings(agreeing):
    table = agreeing.agreement_.table
    assert set(table["verdict"]) == {"agree"}
    assert not [w for w in agreeing.warnings_ if "disagree" in w]
    n_exp = table[(table["quantity"] == "N") & (table["compared"] == "exponent")].iloc[0]
    truth = HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])
    assert n_exp["common_lower"] <= n_exp["consensus"] + 0.02 and abs(n_exp["consensus"] - truth) < 0.03


def test_answers_impossible_at_a_budget_carry_a_note(agreeing):
    tiny = agreeing.predict(1.0)  # C = 1 FLOP: N_opt D_opt = C/6 in closed form, so D_opt < 1 iff N_opt > C/6
    notes = dict(zip(tiny["method"] + ":" + tiny["quantity"], tiny["note"], strict=True))
    value = tiny.set_index(["method", "quantity"])["value"]
    assert value[("parametric", "N")] * value[("parametric", "D")] == pytest.approx(1 / 6)
    assert "under one training sample" in notes["parametric:N"]
    assert "below one sample" in notes["parametric:D"]
    refit = ComputeOptimal(bootstrap=0, budget=1.0, law=agreeing.parametric_law_).fit(agreeing.curves_)
    assert any(w.startswith("at 1 FLOPs, parametric: N_opt") for w in refit.warnings_)
    assert (agreeing.predict(1e21)["note"] == "").all()


def test_a_parametric_law_from_other_data_disagrees_and_is_named(agreeing):
    # the curves follow HOFFMANN (N_opt exponent 0.45); the law comes from runs with the exponents swapped (0.55)
    other = {**HOFFMANN, "alpha": HOFFMANN["beta"], "beta": HOFFMANN["alpha"]}
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 2e9, 6), np.geomspace(1e9, 1e11, 5)))
    runs = pd.DataFrame({"run_id": np.arange(n.size).astype(str), "n_params": n, "dataset_size": d})
    runs["value"] = chinchilla_loss(n, d, other) * np.exp(np.random.default_rng(0).normal(0, 0.005, n.size))
    law = ScalingLaw(bootstrap=40, intervals=None).fit(runs)
    curves = agreeing.curves_
    co = ComputeOptimal(method="all", bootstrap=20, law=law, budget=1e22).fit(curves)
    warnings = [w for w in co.warnings_ if w.startswith("methods disagree on the N_opt exponent")]
    assert len(warnings) == 1
    assert "parametric" in warnings[0] and "likely cause" in warnings[0]
    verdicts = co.agreement_.table.set_index(["quantity", "compared"])["verdict"]
    assert verdicts[("N", "exponent")] == "disagree"
    assert ("N", "at requested budget") in verdicts.index
    block = co.agreement_.to_dict()
    assert {"comparisons", "estimates", "warnings"} <= set(block) and block["warnings"]


def test_the_verdict_says_when_exponents_overlap_but_the_budget_does_not():
    """Overlapping exponents, disjoint N_opt at the budget: the verdict says both; an exponent fixed by the
    law's form (the same in every replica) is named as such and not counted as agreement."""
    from types import SimpleNamespace

    from scalinglab.optimal.agreement import Agreement
    from scalinglab.report.verdict import methods_sentence

    exponents = pd.DataFrame(
        {
            "method": ["envelope", "parametric"],
            "quantity": ["N", "N"],
            "exponent": [0.59, 0.5],
            "lower": [0.32, 0.5],
            "upper": [0.82, 0.5],
        }
    )
    columns = [
        "quantity",
        "compared",
        "budget",
        "methods",
        "verdict",
        "consensus",
        "spread_low",
        "spread_high",
        "common_lower",
        "common_upper",
    ]
    table = pd.DataFrame(
        [
            ("N", "exponent", np.nan, "envelope,parametric", "agree", 0.5, 0.5, 0.59, 0.5, 0.5),
            ("N", "at largest", 1e21, "envelope,parametric", "disagree", np.nan, 1e8, 1e10, np.nan, np.nan),
        ],
        columns=columns,
    )
    estimates = pd.DataFrame(
        [
            ("N", "at largest", 1e21, "envelope", 1e10, 5e9, 2e10),
            ("N", "at largest", 1e21, "parametric", 1e8, 5e7, 2e8),
        ],
        columns=["quantity", "compared", "budget", "method", "value", "lower", "upper"],
    )
    optimal = SimpleNamespace(exponents_=exponents, agreement_=Agreement(table, estimates))
    sentence = methods_sentence(SimpleNamespace(optimal=optimal))  # parametric's 0.5 is fixed by a shared exponent
    assert "parametric: fixed by its law's form, not estimated" in sentence
    assert "does not agree at 1e+21 FLOPs (envelope 1e+10, parametric 1e+08)" in sentence
    exponents.loc[1, ["lower", "upper"]] = [0.45, 0.55]
    sentence = methods_sentence(SimpleNamespace(optimal=optimal))
    assert "exponents overlap" in sentence
    assert "does not at 1e+21 FLOPs (envelope 1e+10, parametric 1e+08)" in sentence
    table.loc[1, "verdict"] = "agree"
    assert methods_sentence(SimpleNamespace(optimal=optimal)).startswith("The compute-optimal methods agree on")
    exponents.loc[1, ["lower", "upper"]] = [0.9, 0.95]
    assert "disagree on N_opt(C)" in methods_sentence(SimpleNamespace(optimal=optimal))


def test_an_exponent_fixed_by_the_form_is_not_compared():
    fixed = PowerLaw(2.0, 0.5, np.column_stack([np.log(np.linspace(1.5, 2.5, 20)), np.full(20, 0.5)]))
    free = PowerLaw(3.0, 0.6, np.column_stack([np.log(np.linspace(2.5, 3.5, 20)), np.linspace(0.3, 0.9, 20)]))
    laws = {("parametric", "N"): fixed, ("envelope", "N"): free}
    result = compare_methods(laws, {"largest": 1e6}, 0.95, {})
    assert list(result.table["compared"]) == ["at largest"]  # no exponent row: one estimated exponent only
    assert set(result.estimates["compared"]) == {"exponent", "at largest"}  # both still listed


def test_the_scope_of_the_envelope_is_a_cause():
    obs = example_curves(noise=0.001, seed=1)
    fitted = ComputeOptimal(bootstrap=0, scope="the runs at data scale 4X only").fit(obs)
    causes = fitted._causes({"envelope": [], "isoflop": [], "parametric": []})
    assert causes["envelope"] == ["envelope read the runs at data scale 4X only"]
    assert causes["isoflop"][0] == "isoflop read the runs at data scale 4X only"
    assert not any("4X" in c for c in causes["parametric"])
    plain = ComputeOptimal(bootstrap=0).fit(obs)._causes({"envelope": [], "isoflop": [], "parametric": []})
    assert not any("4X" in c for c in plain["envelope"])
