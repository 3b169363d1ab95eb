"""Do the compute-optimal methods agree? Their exponents and predictions compared interval by interval.

For each quantity (N, D, S) fitted by two or more methods, the exponents and the predictions at given
budgets are compared: the methods agree when their intervals share a point (the largest lower bound is at
most the smallest upper bound). Agreeing methods give a consensus (mean exponent, geometric-mean
prediction, clipped into the interval they share) with the spread of the estimates and that interval;
disagreeing ones give a warning that names the methods, their numbers and the likely causes the fit can
see (the FLOPs range each used, budgets it dropped, outlying checkpoints, the parametric law's
identifiability).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.optimal.powerfit import PowerLaw

NAMES = {"N": "N_opt", "S": "S_opt", "D": "D_opt"}
RANGE_SHARE = 0.5  # a method whose FLOPs range spans under this share of the widest one's decades is "narrow"
EXTRAPOLATION_SLACK = 10**0.05  # a budget within 0.05 decades of a method's largest point is not an extrapolation


@dataclass
class Agreement:
    """The comparison: `table` (one row per quantity and comparison), `estimates` (one row per method
    in each comparison) and `warnings` (one per disagreement, with its likely causes)."""

    table: pd.DataFrame
    estimates: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the rows of both tables (non-finite numbers as None) and the warnings."""

        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        return {"comparisons": rows(self.table), "estimates": rows(self.estimates), "warnings": list(self.warnings)}


def fmt3(x: float) -> str:
    """Three significant digits, as the comparisons quote numbers."""
    return f"{x:.3g}"


def describe_estimate(method: str, value: float, lower: float, upper: float) -> str:
    """One method's estimate with its interval, as the warnings and the one answer quote it."""
    return f"{method} {fmt3(value)} [{fmt3(lower)}, {fmt3(upper)}]"


def compare_methods(
    laws: dict[tuple[str, str], PowerLaw],
    budgets: dict[str, float],
    ci_level: float,
    causes: dict[str, list[str]],
    budget_causes: dict[str, dict[str, list[str]]] | None = None,
) -> Agreement:
    """Compare every quantity's methods on the exponent and at each named budget.

    `causes` maps a method to the things that may make it differ (its range, dropped points, outliers,
    the law's identifiability); `budget_causes` maps a budget's label to such causes that hold there only
    (extrapolation). A warning quotes those of the methods in conflict, each cause once: later warnings
    refer to it.
    """
    summary, estimates, warnings = [], [], []
    quoted: set[str] = set()
    for quantity in NAMES:
        methods = [m for (m, q) in laws if q == quantity]
        if len(methods) < 2:
            continue
        comparisons = [("exponent", None, None)] + [(f"at {label}", label, c) for label, c in budgets.items()]
        for what, label, budget in comparisons:
            values = {}
            for method in methods:
                law = laws[method, quantity]
                value = law.exponent if budget is None else float(law.predict(budget))
                interval = law.interval(budget, ci_level) or (np.nan, np.nan)
                estimates.append((quantity, what, budget, method, float(value), *interval))
                if budget is None and interval[0] == interval[1]:
                    continue  # an exponent every replica shares is the law's assumption (C^0.5), not an estimate
                values[method] = (float(value), *interval)
            if len(values) < 2:
                continue
            extra = (budget_causes or {}).get(label, {}) if label else {}
            merged = {m: causes.get(m, []) + extra.get(m, []) for m in values}
            row, warning = _verdict(quantity, what, budget, values, merged, quoted)
            summary.append(row)
            if warning:
                warnings.append(warning)
    table = pd.DataFrame(
        summary,
        columns=[
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
        ],
    )
    est = pd.DataFrame(estimates, columns=["quantity", "compared", "budget", "method", "value", "lower", "upper"])
    return Agreement(table, est, warnings)


def _verdict(
    quantity: str,
    what: str,
    budget: float | None,
    values: dict[str, tuple[float, float, float]],
    causes: dict[str, list[str]],
    quoted: set[str],
) -> tuple[tuple, str | None]:
    methods = list(values)
    point = np.array([values[m][0] for m in methods])
    lower = np.array([values[m][1] for m in methods])
    upper = np.array([values[m][2] for m in methods])
    spread = (float(point.min()), float(point.max()))
    consensus = float(np.mean(point)) if budget is None else float(np.exp(np.mean(np.log(point))))
    base = (quantity, what, budget, ",".join(methods))
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        return (*base, "no intervals", np.nan, *spread, np.nan, np.nan), None
    common = (float(lower.max()), float(upper.min()))
    if common[0] <= common[1]:  # the consensus stays inside the interval every method allows
        return (*base, "agree", float(np.clip(consensus, *common)), *spread, *common), None
    apart = [(a, b) for a, b in combinations(methods, 2) if values[a][1] > values[b][2] or values[b][1] > values[a][2]]
    involved = sorted({m for pair in apart for m in pair}, key=methods.index)
    subject = f"{NAMES[quantity]} exponent" if budget is None else f"{NAMES[quantity]} {what} ({fmt3(budget)} FLOPs)"
    listed = ", ".join(describe_estimate(m, *values[m]) for m in methods)
    pairs = "; ".join(f"{a} vs {b}" for a, b in apart)
    found = [c for m in involved for c in causes.get(m, [])]
    repeated = [c for c in found if c in quoted]
    found = [c for c in found if c not in quoted]
    quoted.update(found)
    if repeated:
        found.append(f"{len(repeated)} cause(s) given above")
    why = (
        "; ".join(found)
        if found
        else (
            "no cause found in the ranges used, outliers or the law's identifiability: the curves may not follow one"
            " power law over the range (e.g. a learning-rate schedule tuned to one run length)"
        )
    )
    warning = f"methods disagree on the {subject}: {listed}: intervals do not overlap ({pairs}); likely cause: {why}"
    return (*base, "disagree", np.nan, *spread, np.nan, np.nan), warning


def range_causes(
    usage: dict[str, dict[str, Any]], budgets: dict[str, float]
) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Per method: a FLOPs range much narrower than the widest method's; per budget and method: extrapolation
    beyond the method's largest point."""
    spans = {
        m: np.log10(u["flops_high"] / u["flops_low"])
        for m, u in usage.items()
        if u.get("flops_low") and u.get("flops_high")
    }
    general: dict[str, list[str]] = {m: [] for m in usage}
    at_budget: dict[str, dict[str, list[str]]] = {label: {} for label in budgets}
    if not spans:
        return general, at_budget
    widest = max(spans, key=spans.get)
    for method, span in spans.items():
        u = usage[method]
        if method != widest and span < RANGE_SHARE * spans[widest]:
            general[method].append(
                f"{method} used only {u['unit']} {fmt3(u['flops_low'])}..{fmt3(u['flops_high'])} FLOPs ({span:.2g} "
                f"decades, against {spans[widest]:.2g} for {widest})"
            )
        for label, c in budgets.items():
            if c > u["flops_high"] * EXTRAPOLATION_SLACK:
                at_budget[label].setdefault(method, []).append(
                    f"{method} extrapolates {np.log10(c / u['flops_high']):.2g} decades beyond its largest "
                    f"{u['unit'].rstrip('s')} ({fmt3(u['flops_high'])} FLOPs)"
                )
    return general, at_budget


def domain_note(quantity: str, value: float, budget: float, k: float) -> str:
    """Why a predicted optimum is impossible at its budget ("" when it is possible).

    With C = k N D: N above C/k leaves under one sample, D under one sample, S under one step, N under
    one parameter; such answers come from a law extrapolated beyond what it can say.
    """
    if not np.isfinite(value) or value <= 0:
        return f"{NAMES[quantity]} is not a positive number"
    if quantity == "N" and value > budget / k:
        return (
            f"N_opt {fmt3(value)} exceeds C/(k * 1 sample) = {fmt3(budget / k)}: it would leave under one training "
            "sample; the law is extrapolated beyond its data"
        )
    if quantity == "N" and value < 1:
        return f"N_opt {fmt3(value)} is below one parameter; the law is extrapolated beyond its data"
    if quantity == "D" and value < 1:
        return f"D_opt {fmt3(value)} is below one sample; the law is extrapolated beyond its data"
    if quantity == "D" and value > budget / k:
        return (
            f"D_opt {fmt3(value)} exceeds C/(k * 1 parameter) = {fmt3(budget / k)}: it would leave under one "
            "parameter; the law is extrapolated beyond its data"
        )
    if quantity == "S" and value < 1:
        return f"S_opt {fmt3(value)} is below one step; the law is extrapolated beyond its data"
    return ""
