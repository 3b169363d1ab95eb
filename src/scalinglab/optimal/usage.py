"""What each compute-optimal method used: FLOPs range, points (bins, budgets, final points), and what it dropped.

Each method's usage is a dict with: method, unit (what a point is), flops_low and flops_high (the range
of its points), points (how many it fitted), per_point_low and per_point_high (runs or sizes behind each
point), dropped (a list of {"flops", "reason"}), and notes (anything else it did, e.g. outliers smoothed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _range(values: np.ndarray) -> tuple[float | None, float | None]:
    values = np.asarray(values, dtype=float)
    return (float(values.min()), float(values.max())) if values.size else (None, None)


def envelope_usage(bins: pd.DataFrame, mode: str, outliers: pd.DataFrame, env: pd.DataFrame) -> dict[str, Any]:
    """The envelope: bins reached by two or more runs are used, bins reached by one are dropped."""
    used = bins[bins["used"]]
    low, high = _range(env["flops"]) if len(env) else (None, None)
    dropped = [
        {"flops": float(row.bin_flops), "reason": f"one run has points in this bin ({row.points} points)"}
        for row in bins[~bins["used"]].itertuples()
    ]
    notes = [f"{mode} envelope ({len(env)} of {len(bins)} FLOPs bins with points)"]
    if mode == "robust":
        notes.append("each run's curve smoothed (running median of 5, then non-increasing) before binning")
    if len(outliers):
        worst = outliers.sort_values("gap", ascending=False).iloc[0]
        notes.append(
            f"{len(outliers)} outlying checkpoint(s) found, e.g. run {worst['run_id']} at {worst['flops']:.3g} FLOPs: "
            f"{worst['value']:.4g} where its smoothed curve reads {worst['smoothed']:.4g}"
            + ("; ignored" if mode == "robust" else "; the raw envelope may take them")
        )
    return {
        "method": "envelope",
        "unit": "FLOPs bins",
        "flops_low": low,
        "flops_high": high,
        "points": int(len(env)),
        "per_point_low": int(used["runs"].min()) if len(used) else None,
        "per_point_high": int(used["runs"].max()) if len(used) else None,
        "per_point_unit": "runs",
        "dropped": dropped,
        "notes": notes,
    }


def isoflop_usage(minima: pd.DataFrame, dropped: pd.DataFrame, notes: list[str], n_budgets: int) -> dict[str, Any]:
    """IsoFLOP: budgets with a parabola vertex inside the sizes sampled are used; the others are dropped."""
    low, high = _range(minima["budget"]) if len(minima) else (None, None)
    tried = f"{n_budgets} budgets tried, log-spaced between the 20% quantile of the runs' first FLOPs and the 80%"
    tried += " quantile of their last"
    edge = int((dropped["cause"] == "edge").sum()) if len(dropped) else 0
    out_notes = [tried, *notes]
    if edge:
        out_notes.append(
            f"{edge} budget(s) dropped because the best size lies at the edge of the sizes sampled there: the sweep's "
            "sizes do not bracket N_opt at those budgets"
        )
    return {
        "method": "isoflop",
        "unit": "budgets",
        "flops_low": low,
        "flops_high": high,
        "points": int(len(minima)),
        "per_point_low": int(minima["sizes"].min()) if len(minima) else None,
        "per_point_high": int(minima["sizes"].max()) if len(minima) else None,
        "per_point_unit": "model sizes",
        "dropped": [{"flops": float(r.budget), "reason": r.reason} for r in dropped.itertuples()],
        "notes": out_notes,
    }


def parametric_usage(final: pd.DataFrame | None, law: Any, k: float) -> dict[str, Any]:
    """The parametric method: the runs' final points (or the given law's fitted domain)."""
    if final is not None:
        flops = final["flops"].to_numpy()
        count = len(final)
    else:
        n_lo, n_hi = law.domain_["n"]
        d_lo, d_hi = law.domain_["d"]
        flops = np.array([k * n_lo * d_lo, k * n_hi * d_hi])
        count = int(law.n_points_)
    low, high = _range(flops)
    notes = [f"L(N, D) = {law.form_.formula.split('= ', 1)[-1]} fitted on {count} points"]
    if law.not_identified_:
        notes.append(f"the data do not bound {', '.join(law.not_identified_)} (profile interval open)")
    if law.at_bounds_:
        notes.append(f"at the search bounds: {', '.join(law.at_bounds_)}")
    return {
        "method": "parametric",
        "unit": "final points" if final is not None else "fitted points",
        "flops_low": low,
        "flops_high": high,
        "points": count,
        "per_point_low": 1,
        "per_point_high": 1,
        "per_point_unit": "runs",
        "dropped": [],
        "notes": notes,
    }


def usage_table(usage: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per method, for tables: what it used, its FLOPs range, runs behind each point, what it dropped."""
    rows = []
    for method, u in usage.items():
        per = (
            f"{u['per_point_low']}..{u['per_point_high']} {u['per_point_unit']}"
            if u["per_point_low"] is not None
            else ""
        )
        rows.append(
            (
                method,
                f"{u['points']} {u['unit']}",
                np.nan if u["flops_low"] is None else u["flops_low"],
                np.nan if u["flops_high"] is None else u["flops_high"],
                per,
                len(u["dropped"]),
                _dropped_summary(u["dropped"]),
            )
        )
    columns = ["method", "used", "flops_low", "flops_high", "per_point", "dropped", "why_dropped"]
    return pd.DataFrame(rows, columns=columns)


def _dropped_summary(dropped: list[dict[str, Any]]) -> str:
    if not dropped:
        return ""
    reasons: dict[str, int] = {}
    for item in dropped:
        key = item["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return "; ".join(f"{count}x {reason}" for reason, count in reasons.items())
