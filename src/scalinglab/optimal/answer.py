"""One compute-optimal answer at a budget: "train N on D samples (S steps)", and which estimate it is.

Where the methods' N_opt intervals share a point at the budget, the answer is their consensus (the geometric
mean, clipped into the shared interval: `optimal.agreement`). Where they do not, or only one method could be
fitted, the answer is one method's estimate, chosen by what the data say about each, in this order:

1. parametric, when its L(N, D) is identified (every parameter's interval closed, none at a bound) and predicts
   held-out cells within `HELD_OUT_LIMIT`: it is fitted on every cell's end, so it weighs data against model
   size across the whole grid, and its error on cells it was not fitted on is measured;
2. IsoFLOP, when it found a minimum inside the sizes sampled at two budgets or more: those minima are read off
   the runs, not extrapolated;
3. the envelope, which any grid of overlapping runs gives, but which at the largest budget holds only the
   largest runs and so leans toward the largest model.

The reason names the rule that picked it and what the others said, so a reader can overrule it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scalinglab.fit.diagnostics import held_out_error, loose_parameters
from scalinglab.optimal.agreement import describe_estimate, fmt3
from scalinglab.optimal.envelope import sizes_at_top

HELD_OUT_LIMIT = 0.05  # the parametric law stands behind the answer when its median held-out error is below this


@dataclass
class Answer:
    """At `budget` FLOPs: N (interval), D samples seen and S steps by `method` ("consensus" when they agree)."""

    budget: float
    method: str
    n: float
    n_lower: float
    n_upper: float
    d: float | None
    s: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


def law_standing(law: Any) -> tuple[bool, str]:
    """Whether the law may carry the answer, and why (its identification and held-out error, in words)."""
    if law is None:
        return False, "no L(N, D) law was fitted"
    loose = loose_parameters(law)
    if loose:
        return False, f"the law is not identified ({', '.join(loose)} open or at a bound)"
    error = held_out_error(law)
    if error is None or not np.isfinite(error):
        return False, "the law's held-out error is unknown (a form given, not chosen by held-out cells)"
    if error > HELD_OUT_LIMIT:
        return False, f"the law's median held-out error is {error:.1%}, above {HELD_OUT_LIMIT:.0%}"
    return True, f"its law is identified and predicts held-out cells to {error:.1%} (median)"


def compute_optimal_answer(optimal: Any, law: Any) -> Answer | None:
    """The answer at the largest observed budget (None when no method fitted N_opt)."""
    budget = float(optimal.curves_.c.max())
    table = optimal.predict(budget)
    n_rows = table[table["quantity"] == "N"].set_index("method")
    if n_rows.empty:
        return None
    agreed = _consensus(optimal, "N")
    if agreed is not None and len(n_rows) > 1:
        d, s = _consensus(optimal, "D"), _consensus(optimal, "S")
        names = ", ".join(n_rows.index)
        reason = f"the {names} estimates of N_opt overlap within their {optimal.ci_level:.0%} intervals"
        return Answer(budget, "consensus", agreed[0], agreed[1], agreed[2], d and d[0], s and s[0], reason)
    method, why = _pick(optimal, law, set(n_rows.index))
    row = n_rows.loc[method]
    others = [describe_estimate(m, r.value, r.lower, r.upper) for m, r in n_rows.iterrows() if m != method]
    if others:
        why += f"; the others disagree: {', '.join(others)}"
    why += "".join(f"; {note}" for note in _evidence(optimal, method, float(row.value)))
    d, s = _value(table, method, "D"), _value(table, method, "S")
    return Answer(budget, method, float(row.value), float(row.lower), float(row.upper), d, s, why)


def outside_note(answer: Answer, optimal: Any) -> str:
    """Where the answer lies beyond the sizes and samples the runs sampled ("" inside them): an answer outside
    the grid is a forecast of the law or the curves, not a configuration any run measured."""
    curves = optimal.curves_
    parts = []
    for name, value, sampled in (("N", answer.n, curves.n), ("D", answer.d, curves.d)):
        if value is None or sampled is None or not np.isfinite(value):
            continue
        low, high = float(np.min(sampled)), float(np.max(sampled))
        if value < low:
            parts.append(f"{name} {low / value:.2g}x below the smallest sampled ({fmt3(low)})")
        elif value > high:
            parts.append(f"{name} {value / high:.2g}x above the largest sampled ({fmt3(high)})")
    return "; ".join(parts)


def _evidence(optimal: Any, method: str, n: float) -> list[str]:
    """What the other methods' data say about the answer: the envelope's top bin holding one model size, and
    IsoFLOP budgets whose best size lies beyond the sampled sizes on the answer's side."""
    notes = []
    curves = optimal.curves_
    reaching = sizes_at_top(curves)
    if method != "envelope" and ("envelope", "N") in optimal.laws_ and reaching.size == 1:
        notes.append(
            f"only the largest model ({fmt3(reaching[0])}) reaches the largest budget, so the envelope can name no "
            "other there"
        )
    dropped = getattr(optimal, "isoflop_dropped_", None)
    if method != "isoflop" and dropped is not None and len(dropped):
        side = "smallest" if n < float(np.min(curves.n)) else "largest" if n > float(np.max(curves.n)) else None
        edge = int(dropped["reason"].str.contains(f"beyond the {side}").sum()) if side else 0
        if edge:
            notes.append(
                f"IsoFLOP puts the best size beyond the {side} sampled at {edge} of its {optimal.n_budgets} budgets, "
                "as this answer does"
            )
    return notes


def _consensus(optimal: Any, quantity: str) -> tuple[float, float, float] | None:
    """The agreeing methods' consensus at the largest budget, with the interval they share (None: no agreement)."""
    agreement = getattr(optimal, "agreement_", None)
    if agreement is None or agreement.table.empty:
        return None
    table = agreement.table
    rows = table[(table["quantity"] == quantity) & (table["compared"] == "at largest observed budget")]
    if rows.empty or rows["verdict"].iloc[0] != "agree":
        return None
    row = rows.iloc[0]
    return float(row["consensus"]), float(row["common_lower"]), float(row["common_upper"])


def _value(table: Any, method: str, quantity: str) -> float | None:
    rows = table[(table["method"] == method) & (table["quantity"] == quantity)]
    return None if rows.empty else float(rows["value"].iloc[0])


def _pick(optimal: Any, law: Any, fitted: set[str]) -> tuple[str, str]:
    """The estimate to stand behind and why, by the module's order."""
    usable, standing = law_standing(law if "parametric" in fitted else None)
    if usable:
        return "parametric", f"the parametric estimate: {standing}, fitted on every cell"
    minima = getattr(optimal, "isoflop_", None)
    if "isoflop" in fitted and minima is not None and len(minima) >= 2:
        return "isoflop", f"the IsoFLOP estimate: minima inside the sizes sampled at {len(minima)} budgets ({standing})"
    if "envelope" in fitted:
        return "envelope", f"the envelope estimate, the only other one left ({standing})"
    method = sorted(fitted)[0]
    return method, f"the {method} estimate, the only one fitted"
