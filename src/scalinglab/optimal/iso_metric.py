"""Iso-metric profiles of a fitted L(N, D): which (N, D) reach a target, the cheapest, and what it costs.

Works for any two-variable form by solving L(N, D) = target for D at each N (bisection in log D);
the cost of a configuration is its training FLOPs C = k N D (k: `flops_per_param_sample`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from scalinglab.errors import UserError, check_flops_per_param_sample
from scalinglab.fit.law import ScalingLaw

LOG_D_RANGE = (-50.0, 400.0)  # bisection bracket for log D: wide enough for any law we can fit


@dataclass
class Profile:
    target: float
    reference: dict[str, float]  # n, d, value (the law's prediction there), flops
    curve: pd.DataFrame  # n_params, dataset_size, flops, value
    cheapest: dict[str, float]  # n, d, flops
    multipliers: dict[str, float]  # n, d, flops relative to the reference
    improvement: float | None = None  # the relative improvement asked for (None for an absolute target)
    flops_per_param_sample: float = 6.0  # k in C = k N D


def require_nd(law: ScalingLaw, source: str = "the law") -> None:
    """A UserError naming `source` unless the law is in N and D."""
    if law.form_.inputs != ("n", "d"):
        raise UserError(
            f"{source}: form '{law.form_.name}' is a law in {', '.join(law.form_.inputs)}; "
            "an iso-metric profile or cost needs a law in N and D (chinchilla, kaplan)"
        )


def check_improvement(improvement: float, higher_is_better: bool, name: str = "improvement") -> None:
    """A relative improvement must be > 0; for a lower-is-better metric also < 1 (a 100% cut reaches zero)."""
    limit = "> 0" if higher_is_better else "between 0 and 1 for a lower-is-better metric"
    if not (improvement > 0 and (higher_is_better or improvement < 1) and np.isfinite(improvement)):
        raise UserError(f"{name} must be {limit} (0.01 is 1%), got {improvement:g}")


def _log_error(law: ScalingLaw, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    return law.form_.log_predict(law.theta_[None, :], np.stack(np.broadcast_arrays(log_n, log_d)))[0]


def floor(law: ScalingLaw) -> float:
    """The law's best reachable metric, as N and D grow without bound."""
    return float(law.to_metric(np.exp(_log_error(law, np.array([700.0]), np.array([700.0])))[0]))


def solve_d(law: ScalingLaw, n: np.ndarray, target: float) -> np.ndarray:
    """D such that L(n, D) = target for each n (NaN where no finite D reaches it)."""
    goal = np.log(law.ceiling - target if law.higher_is_better else target)
    log_n = np.log(np.asarray(n, dtype=float))
    lo = np.full(log_n.shape, LOG_D_RANGE[0])
    hi = np.full(log_n.shape, LOG_D_RANGE[1])
    reachable = _log_error(law, log_n, hi) < goal
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        above = _log_error(law, log_n, mid) > goal
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        if np.all(hi - lo < 1e-13):
            break
    return np.where(reachable, np.exp(0.5 * (lo + hi)), np.nan)


def reference_point(law: ScalingLaw, reference: tuple[float, float] | None = None) -> dict[str, float]:
    """The reference (N, D) and the law's prediction there (default: the best observed run)."""
    require_nd(law)
    n_ref, d_ref = reference if reference is not None else (law.best_point_["n"], law.best_point_["d"])
    if not (n_ref > 0 and d_ref > 0):
        raise UserError(f"reference N and D must be > 0, got {n_ref}, {d_ref}")
    return {"n": float(n_ref), "d": float(d_ref), "value": float(law.predict(n=n_ref, d=d_ref))}


def resolve_target(
    law: ScalingLaw,
    improvement: float | None = None,
    target: float | None = None,
    reference: tuple[float, float] | None = None,
) -> tuple[float, dict[str, float]]:
    """The absolute target and the reference point (default: the best observed run)."""
    ref = reference_point(law, reference)
    if (improvement is None) == (target is None):
        raise UserError("give exactly one of an improvement (e.g. 0.01 for 1%) or an absolute target")
    if improvement is not None:
        check_improvement(improvement, law.higher_is_better)
        target = ref["value"] * (1 + improvement) if law.higher_is_better else ref["value"] * (1 - improvement)
    if not np.isfinite(target):
        raise UserError(f"target must be a finite number, got {target}")
    best = floor(law)
    beyond = target >= best if law.higher_is_better else target <= best
    if beyond:
        raise UserError(f"target {target:.6g} is beyond the law's floor: the best reachable value is {best:.6g}")
    return float(target), ref


def iso_metric_profile(
    law: ScalingLaw,
    improvement: float | None = None,
    target: float | None = None,
    reference: tuple[float, float] | None = None,
    flops_per_param_sample: float = 6.0,
    n_points: int = 200,
    span: float = 1e4,
) -> Profile:
    """The (N, D) curve reaching the target over N in [ref N / span, ref N * span], and its cheapest point.

    The cost is C = k N D, times the epochs of a steps-aware law read at several (`two_variable(epochs)`: each
    of the D unique samples is trained on that many times)."""
    check_flops_per_param_sample(flops_per_param_sample)
    k = flops_per_param_sample * getattr(law, "epochs_", 1.0)
    target, ref = resolve_target(law, improvement, target, reference)
    ref["flops"] = k * ref["n"] * ref["d"]
    n_grid = np.geomspace(ref["n"] / span, ref["n"] * span, n_points)
    d_grid = solve_d(law, n_grid, target)
    ok = np.isfinite(d_grid)
    if not ok.any():
        raise UserError(f"target {target:.6g} is not reached by any N within {span:g}x of the reference")
    n_grid, d_grid = n_grid[ok], d_grid[ok]
    cost = k * n_grid * d_grid
    i = int(np.argmin(cost))
    lo, hi = np.log(n_grid[max(i - 1, 0)]), np.log(n_grid[min(i + 1, n_grid.size - 1)])
    if hi > lo:
        res = minimize_scalar(
            lambda u: np.log(np.exp(u) * solve_d(law, np.array([np.exp(u)]), target)[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-10},
        )
        n_best = float(np.exp(res.x))
    else:
        n_best = float(n_grid[i])
    d_best = float(solve_d(law, np.array([n_best]), target)[0])
    cheapest = {"n": n_best, "d": d_best, "flops": k * n_best * d_best}
    curve = pd.DataFrame({"n_params": n_grid, "dataset_size": d_grid, "flops": cost, "value": target})
    multipliers = {key: cheapest[key] / ref[key] for key in ("n", "d", "flops")}
    return Profile(target, ref, curve, cheapest, multipliers, improvement, flops_per_param_sample)


def cost_table(
    law: ScalingLaw,
    improvements: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1),
    reference: tuple[float, float] | None = None,
    flops_per_param_sample: float = 6.0,
) -> pd.DataFrame:
    """For each relative improvement, the cheapest (N, D) reaching it and its cost relative to the reference.

    An improvement beyond the law's floor (or out of reach) is reported with NaN costs and a note; an
    improvement out of range, a bad reference or a law not in N and D is an error.
    """
    check_flops_per_param_sample(flops_per_param_sample)
    reference_point(law, reference)
    for improvement in improvements:
        check_improvement(improvement, law.higher_is_better)
    rows = []
    for improvement in improvements:
        try:
            p = iso_metric_profile(
                law, improvement=improvement, reference=reference, flops_per_param_sample=flops_per_param_sample
            )
        except UserError as exc:
            rows.append({"improvement": improvement, "note": str(exc)})
            continue
        rows.append(
            {
                "improvement": improvement,
                "target": p.target,
                "n_params": p.cheapest["n"],
                "dataset_size": p.cheapest["d"],
                "flops": p.cheapest["flops"],
                "n_multiple": p.multipliers["n"],
                "d_multiple": p.multipliers["d"],
                "flops_multiple": p.multipliers["flops"],
                "note": "",
            }
        )
    return pd.DataFrame(rows)
